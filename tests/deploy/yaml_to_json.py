"""Prints the YAML documents of a file as one JSON array (for the C++ tests).

Compose's merge tags (!reset, !override) load as {"!reset": value}, so a test
can see them. Exit 1 with one line on stderr when the file does not parse.
"""
import json
import sys

import yaml


class Loader(yaml.SafeLoader):
    pass


def _tagged(loader, tag_suffix, node):
    if isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_scalar(node)
    return {"!" + tag_suffix: value}


Loader.add_multi_constructor("!", _tagged)


def main():
    path = sys.argv[1]
    try:
        with open(path, encoding="utf-8") as f:
            docs = [d for d in yaml.load_all(f, Loader=Loader) if d is not None]
    except (OSError, yaml.YAMLError) as e:
        print(f"{path}: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
    json.dump(docs, sys.stdout, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
