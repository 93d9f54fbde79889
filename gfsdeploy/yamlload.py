"""YAML loading that remembers where every mapping and key came from.

Inventory and playbook errors must name the file and line; PyYAML forgets
positions after construction, so mappings are built as :class:`Node` dicts that
keep them. Also: duplicate keys are errors (YAML silently keeps the last),
``!sensitive`` marks a value as a secret, ``!vault`` values and whole
vault-encrypted files are decrypted with the run's vault passwords
(:mod:`gfsdeploy.vault`), and template strings remember where they were written.
"""

from __future__ import annotations

import yaml

from gfsdeploy import secrets, vault
from gfsdeploy.errors import GfsError


class Node(dict):
    """A mapping with its source position and each key's line."""

    file: str = ""
    line: int = 0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.key_lines: dict = {}

    def line_of(self, key) -> int:
        return self.key_lines.get(key, self.line)


class Seq(list):
    file: str = ""
    line: int = 0


class Located(str):
    """A template string that remembers the file and line it was written at, so a
    failure to render it names that place (the variable's definition), not only
    the task that used it."""

    origin_file: str = ""
    origin_line: int = 0

    def __reduce__(self):
        return located, (str(self), self.origin_file, self.origin_line)


def located(text: str, file: str, line: int) -> str:
    value = Located(text)
    value.origin_file, value.origin_line = file, line
    return value


def _is_template(text: str) -> bool:
    return "{{" in text or "{%" in text or "{#" in text


#: libyaml's parser when PyYAML has it (several times faster: a 1,000-host inventory),
#: else the pure-Python one; errors are always worded by the pure-Python one (loads)
_FAST = getattr(yaml, "CSafeLoader", None)


def _loader(path: str, error_cls, base=yaml.SafeLoader):
    class Loader(base):
        pass

    def construct_mapping(loader, node):
        # keys written in this mapping; the others come from a `<<: *anchor` merge, and a
        # key written here overrides a merged one (YAML's merge-key rule), it is no duplicate
        own = {id(k) for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge"}
        loader.flatten_mapping(node)
        merged: set = set()
        result = Node()
        result.file, result.line = path, node.start_mark.line + 1
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise error_cls("a mapping key must be a plain value", file=path,
                                line=key_node.start_mark.line + 1, fix="quote the key") from None
            if key in result and (key in merged or id(key_node) not in own):
                del result[key]  # merged, then overridden (or merged twice: the later one wins)
            elif key in result:
                raise error_cls(f"duplicate key {key!r} (first on line {result.key_lines[key]})",
                                file=path, line=key_node.start_mark.line + 1,
                                fix="remove or rename one of the two entries")
            if id(key_node) not in own:
                merged.add(key)
            else:
                merged.discard(key)
            result[key] = loader.construct_object(value_node, deep=True)
            result.key_lines[key] = key_node.start_mark.line + 1
        return result

    def construct_sequence(loader, node):
        result = Seq(loader.construct_object(child, deep=True) for child in node.value)
        result.file, result.line = path, node.start_mark.line + 1
        return result

    def construct_str(loader, node):
        value = loader.construct_scalar(node)
        if _is_template(value):
            # a block scalar (| or >) starts on the line after its indicator
            line = node.start_mark.line + (2 if node.style in ("|", ">") else 1)
            return located(value, path, line)
        return value

    def construct_sensitive(loader, node):
        value = secrets.Sensitive(loader.construct_scalar(node))
        secrets.register(value)
        return value

    def construct_vault(loader, node):
        if not isinstance(node, yaml.ScalarNode):
            raise error_cls("a !vault value must be the text ansible-vault encrypt_string printed", file=path,
                            line=node.start_mark.line + 1, fix="paste the `!vault |` block as it was printed")
        return vault.decrypt_value(loader.construct_scalar(node), {"file": path, "line": node.start_mark.line + 1})

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, construct_sequence)
    Loader.add_constructor("tag:yaml.org,2002:str", construct_str)
    Loader.add_constructor("!sensitive", construct_sensitive)
    Loader.add_constructor("!vault", construct_vault)
    return Loader


def load(path: str, error_cls=GfsError, *, what: str = "file"):
    """Parse ``path``; YAML syntax errors become ``error_cls`` naming file and line."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise error_cls(f"{what} not found", file=path, fix="check the path") from None
    except UnicodeDecodeError as exc:
        with open(path, "rb") as handle:
            line = handle.read().count(b"\n", 0, exc.start) + 1
        raise error_cls(f"{what} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x})", file=path, line=line,
                        fix="save the file as UTF-8") from None
    except OSError as exc:
        raise error_cls(f"cannot read {what}: {exc}", file=path) from None
    if vault.is_encrypted(text):
        data = loads(vault.decrypt_file_text(text, path), path, error_cls)
        vault.register_leaves(data)  # a vault-encrypted file holds secrets: never print them
        return data
    return loads(text, path, error_cls)


def loads(text: str, path: str, error_cls=GfsError):
    if _FAST is not None:
        try:
            return yaml.load(text, Loader=_loader(path, error_cls, _FAST))  # noqa: S506 - CSafeLoader subclass
        except yaml.YAMLError:
            pass  # the pure-Python parser says what is wrong, with its words and line
    try:
        return yaml.load(text, Loader=_loader(path, error_cls))  # noqa: S506 - SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise error_cls(f"YAML syntax error: {problem}", file=path, line=line,
                        fix="fix the indentation or quoting on that line (tabs are not allowed; "
                            "quote values that start with { [ * & ! % @ or contain ': ')") from None
    except yaml.YAMLError as exc:
        raise error_cls(f"YAML error: {exc}", file=path, fix="fix the YAML syntax") from None


def position(obj, key=None) -> dict:
    """``file``/``line`` keyword arguments for an error about ``obj`` (or its ``key``)."""
    if isinstance(obj, Node):
        return {"file": obj.file, "line": obj.line_of(key) if key is not None else obj.line}
    if isinstance(obj, Seq):
        return {"file": obj.file, "line": obj.line}
    return {}
