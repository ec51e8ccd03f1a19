// The scheduler's limits: part of the engine's public options (engine.h)
// without the scheduler itself.
#pragma once

namespace dms {

struct SchedulerOptions {
  int max_batch_tokens = 2048;    // tokens forwarded per step
  int max_running = 64;           // sequences resident at once
  double admit_watermark = 0.01;  // fraction of blocks kept free when admitting
};

}  // namespace dms
