// The source of the dms_test_pch target: it exists only so CMake builds the
// precompiled header that the test binaries reuse (tests/CMakeLists.txt).
// An empty test program (gtest_main provides main); never run by ctest.
