"""Ansible's Jinja filters, written for gfsdeploy with the same names, arguments
and results (checked against ansible-core in tests/templating/).

Each filter is registered under its short name and ``ansible.builtin.<name>``;
the collections' filters playbooks use most (``json_query``, the ``ipaddr``
family) under their collection names too. ``FILTERS`` is the registry the
Templar and the static checker share.
"""

from __future__ import annotations

import base64
import datetime
import glob
import hashlib
import itertools
import json
import math
import ntpath
import os
import random as _random
import re
import shlex
import time
from collections.abc import Mapping, Sequence
from urllib.parse import unquote_plus, urlsplit as _urlsplit

import jinja2
import yaml
from jinja2.filters import do_groupby, do_unique

from gfsdeploy.templating import ipfilters, passwords


class FilterError(ValueError):
    """A filter was used wrongly; the message names the filter and the fix."""


# -- data <-> text ---------------------------------------------------------------
def _json_default(value):
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def to_json(value, *args, **kwargs):
    kwargs.pop("vault_to_text", None)
    kwargs.pop("preprocess_unsafe", None)
    return json.dumps(value, *args, default=_json_default, **kwargs)


def to_nice_json(value, indent=4, sort_keys=True, *args, **kwargs):
    return to_json(value, *args, indent=indent, sort_keys=sort_keys, separators=(",", ": "), **kwargs)


def from_json(value, *args, **kwargs):
    return json.loads(value, *args, **kwargs)


class YamlDumper(yaml.SafeDumper):
    """SafeDumper that also writes str/dict/list subclasses (positions, secrets) as plain YAML."""


YamlDumper.add_multi_representer(str, yaml.representer.SafeRepresenter.represent_str)
YamlDumper.add_multi_representer(dict, yaml.representer.SafeRepresenter.represent_dict)
YamlDumper.add_multi_representer(list, yaml.representer.SafeRepresenter.represent_list)
YamlDumper.add_multi_representer(tuple, yaml.representer.SafeRepresenter.represent_list)
YamlDumper.add_multi_representer(set, yaml.representer.SafeRepresenter.represent_list)
YamlDumper.add_multi_representer(int, yaml.representer.SafeRepresenter.represent_int)
YamlDumper.add_multi_representer(float, yaml.representer.SafeRepresenter.represent_float)


def _dump(value, *args, **kwargs) -> str:
    text = yaml.dump(value, *args, Dumper=YamlDumper, **kwargs)
    if text.endswith("\n...\n"):  # PyYAML ends a lone scalar with a document end marker
        text = text[:-4]
    return text


def to_yaml(value, *args, **kwargs):
    kwargs.setdefault("default_flow_style", None)
    kwargs.setdefault("allow_unicode", True)
    return _dump(value, *args, **kwargs)


def to_nice_yaml(value, indent=4, *args, **kwargs):
    kwargs.setdefault("allow_unicode", True)
    kwargs["default_flow_style"] = False
    return _dump(value, *args, indent=indent, **kwargs)


def from_yaml(value):
    if isinstance(value, str):
        return yaml.safe_load(value)
    return value


def from_yaml_all(value):
    if isinstance(value, str):
        return list(yaml.safe_load_all(value))
    return value


def _text(value, name: str) -> str:
    if isinstance(value, jinja2.Undefined):
        str(value)  # raises the undefined error
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if not isinstance(value, str):
        return str(value)
    return value


def b64encode(value, encoding="utf-8", urlsafe=False):
    raw = _text(value, "b64encode").encode(encoding, "surrogateescape")
    return (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(raw).decode("ascii")


def b64decode(value, encoding="utf-8", urlsafe=False):
    raw = _text(value, "b64decode").encode("ascii", "surrogateescape")
    data = (base64.urlsafe_b64decode if urlsafe else base64.b64decode)(raw)
    return data.decode(encoding, "surrogateescape")


_UUID_NAMESPACE = "361E6D51-FAEC-444A-9079-341386DA8E2E"  # Ansible's


def to_uuid(value, namespace=_UUID_NAMESPACE):
    import uuid  # (imports platform: not on every run's start-up)

    if not isinstance(namespace, uuid.UUID):
        namespace = uuid.UUID(str(namespace))
    return str(uuid.uuid5(namespace, _text(value, "to_uuid")))


def to_bool(value):
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        value = value.lower()
    return value in ("yes", "on", "1", "true", 1)


def to_datetime(value, format="%Y-%m-%d %H:%M:%S"):
    return datetime.datetime.strptime(str(value), format)


def strftime(format, second=None, utc=False):
    when = time.gmtime if utc else time.localtime
    if second is not None:
        try:
            second = float(second)
        except (TypeError, ValueError):
            raise FilterError(f"strftime: invalid epoch seconds {second!r}") from None
    return time.strftime(str(format), when(second))


def quote(value):
    return shlex.quote("" if value is None else _text(value, "quote"))


# -- hashes ----------------------------------------------------------------------
def _digest(value, algorithm: str) -> str:
    return hashlib.new(algorithm, _text(value, algorithm).encode("utf-8")).hexdigest()


def hash_(value, hashtype="sha1"):
    try:
        return _digest(value, str(hashtype))
    except ValueError:
        raise FilterError(f"hash: unknown hash type {hashtype!r}; e.g. md5, sha1, sha256, sha512") from None


def password_hash(value, hashtype="sha512", salt=None, salt_size=None, rounds=None, ident=None):
    try:
        return passwords.password_hash(_text(value, "password_hash"), hashtype, salt, salt_size, rounds, ident)
    except passwords.PasswordHashError as exc:
        raise FilterError(str(exc)) from None


# -- regular expressions ---------------------------------------------------------
def _flags(ignorecase=False, multiline=False) -> int:
    return (re.I if ignorecase else 0) | (re.M if multiline else 0)


def regex_replace(value="", pattern="", replacement="", ignorecase=False, multiline=False, count=0,
                  mandatory_count=0):
    text = _text(value, "regex_replace")
    compiled = re.compile(_text(pattern, "regex_replace"), _flags(ignorecase, multiline))
    result, made = compiled.subn(_text(replacement, "regex_replace"), text, count=int(count))
    if mandatory_count and made != int(mandatory_count):
        raise FilterError(f"regex_replace: {made} replacement(s) made, {mandatory_count} required")
    return result


def regex_findall(value, regex, multiline=False, ignorecase=False):
    return re.findall(_text(regex, "regex_findall"), _text(value, "regex_findall"), _flags(ignorecase, multiline))


def regex_search(value, regex, *args, **kwargs):
    groups = []
    for arg in args:
        arg = str(arg)
        if arg.startswith("\\g"):
            m = re.match(r"\\g<(\S+)>", arg)
            if not m:
                raise FilterError(f"regex_search: bad group reference {arg!r}")
            groups.append(m.group(1))
        elif arg.startswith("\\"):
            groups.append(int(arg[1:]))
        else:
            raise FilterError(f"regex_search: unknown argument {arg!r} (give group references like '\\\\1')")
    unknown = set(kwargs) - {"ignorecase", "multiline"}
    if unknown:
        raise FilterError(f"regex_search: unknown keyword {sorted(unknown)[0]!r}")
    match = re.search(_text(regex, "regex_search"), _text(value, "regex_search"),
                      _flags(kwargs.get("ignorecase", False), kwargs.get("multiline", False)))
    if not match:
        return None
    if not groups:
        return match.group()
    return [match.group(g) for g in groups]


def regex_escape(value, re_type="python"):
    text = _text(value, "regex_escape")
    if re_type == "python":
        return re.escape(text)
    if re_type == "posix_basic":
        return re.sub(r"([\[\]\\^$.*])", r"\\\1", text)
    raise FilterError(f"regex_escape: re_type {re_type!r} is not supported (use 'python' or 'posix_basic')")


# -- logic, choice ---------------------------------------------------------------
def ternary(value, true_val, false_val, none_val=None):
    if value is None and none_val is not None:
        return none_val
    return true_val if value else false_val


def rand(end, start=None, step=None, seed=None):
    rng = _random.Random(seed) if seed is not None else _random.SystemRandom()
    if isinstance(end, int):
        return rng.randrange(start or 0, end, step or 1)
    if hasattr(end, "__iter__"):
        if start is not None or step is not None:
            raise FilterError("random: start and step apply to a number, not a list")
        return rng.choice(list(end))
    raise FilterError("random: give a number or a list")


def shuffle(value, seed=None):
    items = list(value)
    (_random.Random(seed) if seed is not None else _random.SystemRandom()).shuffle(items)
    return items


def mandatory(value, msg=None):
    if isinstance(value, jinja2.Undefined):
        name = getattr(value, "_undefined_name", None)
        raise jinja2.UndefinedError(msg or (f"mandatory variable {name!r} is not defined" if name
                                            else "mandatory variable is not defined"))
    return value


def comment(text, style="plain", **kwargs):
    styles = {
        "plain": {"decoration": "# "},
        "erlang": {"decoration": "% "},
        "c": {"decoration": "// "},
        "cblock": {"beginning": "/*", "decoration": " * ", "end": " */"},
        "xml": {"beginning": "<!--", "decoration": " - ", "end": "-->"},
    }
    if style not in styles:
        raise FilterError(f"comment: unknown style {style!r}; use {', '.join(styles)}")
    params = {"newline": "\n", "beginning": "", "prefix": "", "prefix_count": 1, "decoration": "",
              "postfix": "", "postfix_count": 1, "end": "", **styles[style], **kwargs}
    newline = params["newline"]
    decoration = params["decoration"]
    prefix = params["prefix"] if params["prefix"] else decoration.rstrip() if decoration.strip() else ""
    postfix = params["postfix"] if params["postfix"] else decoration.rstrip() if decoration.strip() else ""
    lines = [decoration + line if line else decoration.rstrip() for line in str(text).split("\n")]
    out = []
    if params["beginning"]:
        out.append(params["beginning"])
    out += [prefix] * int(params["prefix_count"]) if prefix else []
    out += lines
    out += [postfix] * int(params["postfix_count"]) if postfix else []
    if params["end"]:
        out.append(params["end"])
    return newline.join(out)


_BASE_TYPES = (bool, int, float, str, bytes, dict, list, tuple, set)


def type_debug(value):
    for base in _BASE_TYPES:
        if type(value) is not base and isinstance(value, base) and type(value).__module__.startswith("gfsdeploy"):
            return base.__name__
    return type(value).__name__


# -- data structures -------------------------------------------------------------
def _merge(x: dict, y: Mapping, recursive: bool, list_merge: str) -> dict:
    out = dict(x)
    for key, new in y.items():
        if key not in out:
            out[key] = new
            continue
        old = out[key]
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            out[key] = _merge(dict(old), new, recursive, list_merge) if recursive else new
        elif isinstance(old, list) and isinstance(new, list):
            if list_merge == "replace":
                out[key] = new
            elif list_merge == "keep":
                out[key] = old
            elif list_merge == "append":
                out[key] = old + new
            elif list_merge == "prepend":
                out[key] = new + old
            elif list_merge == "append_rp":
                out[key] = [v for v in old if v not in new] + new
            else:  # prepend_rp
                out[key] = new + [v for v in old if v not in new]
        else:
            out[key] = new
    return out


LIST_MERGE = ("replace", "keep", "append", "prepend", "append_rp", "prepend_rp")


def combine(*terms, recursive=False, list_merge="replace", **unknown):
    if unknown:
        raise FilterError(f"combine: unknown keyword {sorted(unknown)[0]!r} (use recursive=, list_merge=)")
    if list_merge not in LIST_MERGE:
        raise FilterError(f"combine: list_merge must be one of {', '.join(LIST_MERGE)}, got {list_merge!r}")
    dicts = []
    for term in terms:
        if isinstance(term, (list, tuple)):
            dicts.extend(term)
        else:
            dicts.append(term)
    result: dict = {}
    for d in dicts:
        if not isinstance(d, Mapping):
            raise FilterError(f"combine: expects dictionaries, got {type(d).__name__} ({d!r:.60})")
        result = _merge(result, d, bool(recursive), list_merge)
    return result


@jinja2.pass_environment
def extract(environment, item, container, morekeys=None):
    try:
        value = container[item]
    except (KeyError, IndexError, TypeError):
        return environment.undefined(f"extract: {item!r} is not in the container", name=str(item))
    if morekeys is None:
        return value
    for key in morekeys if isinstance(morekeys, list) else [morekeys]:
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError):
            return environment.undefined(f"extract: {key!r} is not in {value!r:.60}", name=str(key))
    return value


def flatten(value, levels=None, skip_nulls=True):
    if not isinstance(value, (list, tuple)):
        raise FilterError(f"flatten: expects a list, got {type(value).__name__}")
    out = []
    for item in value:
        if skip_nulls and item in (None, "None", "null"):
            continue
        if isinstance(item, (list, tuple)):
            if levels is None:
                out.extend(flatten(item, None, skip_nulls))
            elif int(levels) >= 1:
                out.extend(flatten(item, int(levels) - 1, skip_nulls) if int(levels) > 1 else
                           [i for i in item if not (skip_nulls and i in (None, "None", "null"))])
            else:
                out.append(item)
        else:
            out.append(item)
    return out


def dict2items(value, key_name="key", value_name="value"):
    if not isinstance(value, Mapping):
        raise FilterError(f"dict2items requires a dictionary, got {type(value).__name__} instead")
    return [{key_name: k, value_name: v} for k, v in value.items()]


def items2dict(value, key_name="key", value_name="value"):
    if not isinstance(value, (list, tuple)):
        raise FilterError(f"items2dict requires a list, got {type(value).__name__} instead")
    out = {}
    for item in value:
        if not isinstance(item, Mapping):
            raise FilterError(f"items2dict requires a list of dictionaries, got an item {item!r:.60}")
        try:
            out[item[key_name]] = item[value_name]
        except KeyError as exc:
            raise FilterError(f"items2dict: an item has no {exc.args[0]!r} key "
                              f"(set key_name=/value_name=): {item!r:.60}") from None
    return out


def subelements(value, subelements, skip_missing=False):
    if isinstance(value, Mapping):
        items = list(value.values())
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise FilterError("subelements: the first argument must be a list or a dict")
    if isinstance(subelements, list):
        path = subelements
    elif isinstance(subelements, str):
        path = subelements.split(".")
    else:
        raise FilterError("subelements: the key must be a string or a list of keys")
    out = []
    for item in items:
        values = item
        for key in path:
            if not isinstance(values, Mapping) or key not in values:
                if skip_missing:
                    values = None
                    break
                raise FilterError(f"subelements: could not find {key!r} in {item!r:.80}")
            values = values[key]
        if values is None:
            continue
        if not isinstance(values, list):
            raise FilterError(f"subelements: {'.'.join(path)!r} of {item!r:.60} is not a list")
        out.extend([item, sub] for sub in values)
    return out


@jinja2.pass_environment
def groupby(environment, value, attribute, *args, **kwargs):
    return [[grouper, list(items)] for grouper, items in do_groupby(environment, value, attribute, *args, **kwargs)]


def split(value, sep=None, maxsplit=-1):
    return _text(value, "split").split(sep, maxsplit)


def rekey_on_member(data, key, duplicates="error"):
    if duplicates not in ("error", "overwrite"):
        raise FilterError(f"rekey_on_member: duplicates must be 'error' or 'overwrite', got {duplicates!r}")
    items = data.values() if isinstance(data, Mapping) else data
    if not isinstance(items, (list, tuple, type({}.values()))):
        raise FilterError("rekey_on_member: expects a list or a dict of dictionaries")
    out = {}
    for item in items:
        if not isinstance(item, Mapping):
            raise FilterError(f"rekey_on_member: {item!r:.60} is not a dictionary")
        if key not in item:
            raise FilterError(f"rekey_on_member: key {key!r} not found in {item!r:.60}")
        new = item[key]
        if new in out and duplicates == "error":
            raise FilterError(f"rekey_on_member: key {new!r} is not unique")
        out[new] = item
    return out


# -- sets (order kept: first occurrence wins) -------------------------------------
def _is_hashable(values) -> bool:
    try:
        for v in values:
            hash(v)
    except TypeError:
        return False
    return True


def _unique_list(values) -> list:
    out = []
    if _is_hashable(values):
        seen = set()
        for v in values:
            if v not in seen:
                seen.add(v)
                out.append(v)
        return out
    for v in values:
        if v not in out:
            out.append(v)
    return out


@jinja2.pass_environment
def unique(environment, value, case_sensitive=None, attribute=None):
    """First occurrences, in order; strings compare case-insensitively unless
    ``case_sensitive=True`` (Jinja's rule, which Ansible keeps)."""
    try:
        return list(do_unique(environment, value, case_sensitive=bool(case_sensitive), attribute=attribute))
    except TypeError:  # unhashable items (lists, dicts)
        if attribute is not None:
            raise FilterError("unique: attribute= needs hashable values") from None
        return _unique_list(list(value))


def intersect(a, b):
    return _unique_list([x for x in a if x in b])


def difference(a, b):
    return _unique_list([x for x in a if x not in b])


def symmetric_difference(a, b):
    both = intersect(a, b)
    return [x for x in union(a, b) if x not in both]


def union(a, b):
    return _unique_list(list(a) + list(b))


# -- numbers ---------------------------------------------------------------------
def logarithm(x, base=math.e):
    return math.log10(x) if base == 10 else math.log(x, base)


def power(x, y):
    return math.pow(x, y)


def inversepower(x, base=2):
    return math.sqrt(x) if base == 2 else math.pow(x, 1.0 / float(base))


_UNITS = "BKMGTPEZY"


def human_readable(size, isbits=False, unit=None):
    try:
        number = float(size)
    except (TypeError, ValueError):
        raise FilterError(f"human_readable: {size!r} is not a number") from None
    base = "bits" if isbits else "Bytes"
    suffix = ""
    for index, letter in enumerate(_UNITS):
        limit = 1 << (10 * (index + 1))
        if (unit is None and number < limit) or (unit is not None and letter == str(unit)[:1].upper()):
            divided = number / (1 << (10 * index))
            suffix = base if index == 0 else letter + ("b" if isbits else "B")
            return f"{divided:.2f} {suffix}"
    return f"{number / (1 << 80):.2f} Y{'b' if isbits else 'B'}"


_HUMAN = re.compile(r"^\s*(\d+\.?\d*|\.\d+)\s*([A-Za-z]*)\s*$")


def human_to_bytes(size, default_unit=None, isbits=False):
    """``10M``/``10 MB`` -> 10485760 (bits with isbits: ``10Mb``). Powers of 1024."""
    m = _HUMAN.match(str(size))
    if not m:
        raise FilterError(f"human_to_bytes: cannot parse {size!r} (expected e.g. '10M' or '10 MB')")
    unit = m.group(2) or (str(default_unit) if default_unit else "")
    letter, rest = (unit[:1].upper(), unit[1:]) if unit else ("B", "")
    kind = "b" if isbits else "B"
    ok = letter in _UNITS and (rest in ("", kind) if letter != "B" else unit in ("", "B", "b")[: 3 if isbits else 2])
    if not ok:
        raise FilterError(f"human_to_bytes: unknown unit {unit!r} (use one of {', '.join(_UNITS)}"
                          f"{', optionally followed by ' + kind if kind else ''})")
    return int(round(float(m.group(1)) * (1 << (10 * _UNITS.index(letter)))))


# -- paths -----------------------------------------------------------------------
def path_join(paths):
    if isinstance(paths, str):
        return paths
    if isinstance(paths, (list, tuple)):
        return os.path.join(*[str(p) for p in paths])
    raise FilterError(f"path_join: expects a string or a list of strings, got {type(paths).__name__}")


def commonpath(paths):
    if not isinstance(paths, (list, tuple)):
        raise FilterError(f"commonpath: expects a list of paths, got {type(paths).__name__}")
    return os.path.commonpath([str(p) for p in paths])


def _path(fn):
    def wrapped(value, *args):
        return fn(_text(value, fn.__name__), *args)

    wrapped.__name__ = fn.__name__
    return wrapped


def fileglob(pattern):
    return [g for g in glob.glob(str(pattern)) if os.path.isfile(g)]


# -- URLs ------------------------------------------------------------------------
_URL_PARTS = ("fragment", "hostname", "netloc", "password", "path", "port", "query", "scheme", "username")


def urlsplit(value, query=""):
    parts = _urlsplit(_text(value, "urlsplit"))
    result = {name: getattr(parts, name) for name in _URL_PARTS}
    if query:
        if query not in result:
            raise FilterError(f"urlsplit: unknown URL component {query!r}; use one of {', '.join(_URL_PARTS)}")
        return result[query]
    return result


# -- collections' filters playbooks use -------------------------------------------
def json_query(data, expr):
    try:
        import jmespath
    except ImportError:
        raise FilterError("json_query needs the Python package jmespath (pip install jmespath)") from None
    try:
        return jmespath.search(str(expr), _plain(data))
    except jmespath.exceptions.JMESPathError as exc:
        raise FilterError(f"json_query: {exc}") from None


def _plain(value):
    """Subclasses (positions, secrets) as plain types, which jmespath's type checks expect."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, str) and type(value) is not str:
        return str.__str__(value)
    return value


def vault_filter(data, secret, salt=None, vault_id="filter_default", wrap_object=False):
    from gfsdeploy import vault

    if not isinstance(secret, (str, bytes)) or not isinstance(data, (str, bytes)):
        raise FilterError("vault: the data and the secret must be strings")
    if isinstance(salt, str):
        salt = salt.encode()
    return vault.encrypt(data, secret, vault_id=vault_id, salt=salt or None)


def unvault_filter(value, secret, vault_id="filter_default"):
    from gfsdeploy import vault

    if not isinstance(secret, (str, bytes)):
        raise FilterError("unvault: the secret must be a string")
    if isinstance(value, vault.VaultedStr):
        return str.__str__(value)
    if not vault.is_encrypted(value):
        return value
    ring = vault.Keyring()
    ring.add(str(vault_id), secret)
    try:
        plain = ring.decrypt(str(value)).decode("utf-8")
    except vault.VaultError as exc:
        raise FilterError(f"unvault: {exc.message}") from None
    from gfsdeploy import secrets

    secrets.register(plain)
    return plain


def pairs_to_dict(value):
    """community.general.dict: a list of [key, value] pairs as a dictionary."""
    try:
        return dict(value)
    except (TypeError, ValueError):
        raise FilterError("dict: expects a list of [key, value] pairs") from None


def dict_kv(value, key):
    return {key: value}


def _zip(*args):
    return [list(t) for t in zip(*args)]


def _zip_longest(*args, fillvalue=None):
    return [list(t) for t in itertools.zip_longest(*args, fillvalue=fillvalue)]


def _product(*args, repeat=1):
    return [list(t) for t in itertools.product(*args, repeat=repeat)]


def _permutations(value, r=None):
    return [list(t) for t in itertools.permutations(value, r)]


def _combinations(value, r):
    return [list(t) for t in itertools.combinations(value, r)]


BUILTIN = {
    "b64decode": b64decode, "b64encode": b64encode, "to_uuid": to_uuid,
    "to_json": to_json, "to_nice_json": to_nice_json, "from_json": from_json,
    "to_yaml": to_yaml, "to_nice_yaml": to_nice_yaml, "from_yaml": from_yaml, "from_yaml_all": from_yaml_all,
    "basename": _path(os.path.basename), "dirname": _path(os.path.dirname),
    "expanduser": _path(os.path.expanduser), "expandvars": _path(os.path.expandvars),
    "realpath": _path(os.path.realpath), "relpath": _path(os.path.relpath),
    "splitext": lambda value: list(os.path.splitext(_text(value, "splitext"))),
    "normpath": _path(os.path.normpath), "path_join": path_join, "commonpath": commonpath,
    "win_basename": _path(ntpath.basename), "win_dirname": _path(ntpath.dirname),
    "win_splitdrive": lambda value: list(ntpath.splitdrive(_text(value, "win_splitdrive"))),
    "fileglob": fileglob, "bool": to_bool, "to_datetime": to_datetime, "strftime": strftime, "quote": quote,
    "md5": lambda value: _digest(value, "md5"), "sha1": lambda value: _digest(value, "sha1"),
    "checksum": lambda value: _digest(value, "sha1"), "hash": hash_, "password_hash": password_hash,
    "regex_replace": regex_replace, "regex_escape": regex_escape, "regex_search": regex_search,
    "regex_findall": regex_findall, "ternary": ternary, "random": rand, "shuffle": shuffle,
    "mandatory": mandatory, "comment": comment, "type_debug": type_debug,
    "combine": combine, "extract": extract, "flatten": flatten, "dict2items": dict2items,
    "items2dict": items2dict, "subelements": subelements, "split": split, "groupby": groupby,
    "log": logarithm, "pow": power, "root": inversepower,
    "unique": unique, "intersect": intersect, "difference": difference,
    "symmetric_difference": symmetric_difference, "union": union,
    "product": _product, "permutations": _permutations, "combinations": _combinations,
    "human_readable": human_readable, "human_to_bytes": human_to_bytes, "rekey_on_member": rekey_on_member,
    "zip": _zip, "zip_longest": _zip_longest, "urlsplit": urlsplit, "urldecode": unquote_plus,
    "vault": vault_filter, "unvault": unvault_filter,
}

COLLECTIONS = {
    "community.general.json_query": json_query,
    "ovirt.ovirt.json_query": json_query,
    "community.general.dict": pairs_to_dict,
    "community.general.dict_kv": dict_kv,
    **{f"ansible.utils.{name}": fn for name, fn in ipfilters.FILTERS.items()},
    **{f"ansible.netcommon.{name}": fn for name, fn in ipfilters.FILTERS.items()},
}

#: short name -> filter, as playbooks write them without a collection prefix
SHORT = {**BUILTIN, "json_query": json_query, "dict_kv": dict_kv, **ipfilters.FILTERS}


#: tests that Ansible before 2.9 also accepted as filters (``result | failed``,
#: ``v | version_compare('1.8', '<')``); old playbooks still use them
LEGACY_TEST_FILTERS = ("version_compare", "failed", "succeeded", "success", "changed", "skipped", "match",
                       "search", "regex")


def registry(jinja_builtins: Mapping) -> dict:
    """Every filter name a template may use: Jinja's own, Ansible's (short and
    ``ansible.builtin.``), the collections' listed above, and the legacy test-filters."""
    from gfsdeploy.templating import tests as _tests

    out = dict(jinja_builtins)
    out.update({name: _tests.BUILTIN[name] for name in LEGACY_TEST_FILTERS})
    out.update(SHORT)
    for name in list(jinja_builtins) + list(BUILTIN):
        out[f"ansible.builtin.{name}"] = out[name]
    out.update(COLLECTIONS)
    return out


def is_sequence(value) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))
