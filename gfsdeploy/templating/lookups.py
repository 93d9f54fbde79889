"""Lookups — ``lookup('file', 'x')``, ``query('first_found', …)`` and the
``with_<name>`` loops — run on the controller, with Ansible's names and results.

Every lookup returns a list. ``lookup()`` joins a list of strings with commas
(one non-string item is returned as is) unless ``wantlist=True``; ``query()``
(alias ``q``) always returns the list. Files are searched the way Ansible
searches them: in ``files/`` (``templates/`` for templates, ``vars/`` for vars)
then in the playbook's own directory, role directories first when the task
comes from a role.

``password`` keeps generated passwords in files on the controller: plan never
creates one (the value is then known after apply). A lookup that reaches the
network (``url``) is refused.
"""

from __future__ import annotations

import copy
import glob
import itertools
import os
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field


class LookupError_(ValueError):
    """A lookup failed (file missing, command failed, bad terms)."""


@dataclass
class LookupContext:
    """What a lookup may use: the variables of the task, the Templar that renders
    templates, and the directories relative names are searched in (most specific first)."""

    variables: dict
    templar: object
    search_dirs: list = field(default_factory=list)

    def find(self, name: str, subdir: str | None) -> str | None:
        """Ansible's search: each base directory's ``subdir/name`` then ``name``."""
        name = os.path.expanduser(str(name))
        if os.path.isabs(name):
            return name if os.path.exists(name) else None
        for base in self.search_dirs:
            candidates = [os.path.join(base, subdir, name)] if subdir else []
            for candidate in (*candidates, os.path.join(base, name)):
                if os.path.exists(candidate):
                    return os.path.normpath(candidate)
        return None

    def where(self, subdir: str | None) -> str:
        dirs = [os.path.join(b, subdir) for b in self.search_dirs] if subdir else []
        return ", ".join(dirs + list(self.search_dirs)) or "(no search path)"


def _terms(terms) -> list:
    return list(terms)


def lookup_env(ctx, terms, default=""):
    return [os.environ.get(str(t), default) for t in terms]


def lookup_file(ctx, terms, lstrip=False, rstrip=True):
    out = []
    for term in terms:
        path = ctx.find(term, "files")
        if path is None or not os.path.isfile(path):
            raise LookupError_(f"file lookup: could not find {term!r} (searched {ctx.where('files')})")
        from gfsdeploy import vault

        try:
            text = vault.read_file(path).decode("utf-8")  # vault-encrypted files are decrypted
        except UnicodeDecodeError:
            raise LookupError_(f"file lookup: {term!r} is not UTF-8 text") from None
        if lstrip:
            text = text.lstrip()
        if rstrip:
            text = text.rstrip()
        out.append(text)
    return out


def lookup_template(ctx, terms, convert_data=True, template_vars=None, **options):
    unknown = set(options) - {"variable_start_string", "variable_end_string", "comment_start_string",
                              "comment_end_string", "jinja2_native", "trim_blocks"}
    if unknown:
        raise LookupError_(f"template lookup: unknown option {sorted(unknown)[0]!r}")
    if any(k in options for k in ("variable_start_string", "variable_end_string", "comment_start_string",
                                  "comment_end_string")):
        raise LookupError_("template lookup: custom delimiters are not supported by gfsdeploy")
    out = []
    for term in terms:
        path = ctx.find(term, "templates")
        if path is None or not os.path.isfile(path):
            raise LookupError_(f"template lookup: could not find {term!r} (searched {ctx.where('templates')})")
        variables = {**ctx.variables, **(template_vars or {})}
        out.append(ctx.templar.render_file(path, variables))
    return out


def lookup_pipe(ctx, terms):
    out = []
    for term in terms:
        import subprocess  # only the pipe lookup runs a process (start-up stays small)

        proc = subprocess.run(str(term), shell=True, capture_output=True, check=False)  # noqa: S602 - pipe runs a shell command by definition
        if proc.returncode != 0:
            raise LookupError_(f"pipe lookup: command {term!r} exited with {proc.returncode}")
        out.append(proc.stdout.decode("utf-8", "replace").rstrip())
    return out


def lookup_lines(ctx, terms):
    out = []
    for text in lookup_pipe(ctx, terms):
        out.extend(text.splitlines())
    return out


_MISSING = object()


def lookup_vars(ctx, terms, default=_MISSING):
    out = []
    for term in terms:
        if not isinstance(term, str):
            raise LookupError_(f"vars lookup: a variable name must be a string, got {term!r}")
        if term in ctx.variables:
            out.append(ctx.variables[term])  # already rendered: the runner resolves variables first
        elif term in ctx.variables.get("hostvars", {}).get(ctx.variables.get("inventory_hostname"), {}):
            out.append(ctx.variables["hostvars"][ctx.variables["inventory_hostname"]][term])
        elif default is not _MISSING:
            out.append(default)
        else:
            raise LookupError_(f"vars lookup: no variable named {term!r}")
    return out


def lookup_varnames(ctx, terms):
    out = []
    for term in terms:
        pattern = re.compile(str(term))
        out.extend(name for name in ctx.variables if pattern.search(name))
    return out


def _split_files(value) -> list:
    if isinstance(value, str):
        return [v for v in re.split(r"[,;]", value) if v] if re.search(r"[,;]", value) else [value]
    return [str(v) for v in value or []]


def lookup_first_found(ctx, terms, files=None, paths=None, skip=False, subdir=None):
    """The first existing file. As ``lookup()`` it searches the playbook's (role's)
    directory; a ``with_first_found`` loop passes ``subdir`` (``files``,
    ``templates`` or ``vars``, after the task's module) to search there first."""
    candidates: list[str] = []
    default_files = _split_files(files) if files else []
    default_paths = _split_files(paths) if paths else []

    def expand(names, dirs):
        if not dirs:
            return list(names)
        return [os.path.join(d, n) for d in dirs for n in names]

    if not terms:
        candidates = expand(default_files, default_paths)
    for term in terms:
        if isinstance(term, Mapping):
            unknown = set(term) - {"files", "paths", "skip"}
            if unknown:
                raise LookupError_(f"first_found: unknown key {sorted(unknown)[0]!r} (use files, paths, skip)")
            skip = term.get("skip", skip)
            candidates += expand(_split_files(term.get("files") or default_files),
                                 _split_files(term.get("paths")) or default_paths)
        elif isinstance(term, (list, tuple)):
            candidates += expand([str(t) for t in term], default_paths)
        else:
            candidates += expand(_split_files(str(term)), default_paths)
    for candidate in candidates:
        found = ctx.find(candidate, subdir)
        if found is not None and os.path.isfile(found):
            return [found]
    if skip:
        return []
    raise LookupError_(f"first_found: none of {', '.join(candidates) or '(no files)'} exists "
                       f"(searched {ctx.where(subdir)})")


def lookup_fileglob(ctx, terms):
    out = []
    for term in terms:
        term = str(term)
        if os.path.isabs(term):
            bases = [os.path.dirname(term)]
        else:
            bases = []
            for base in ctx.search_dirs:
                bases += [os.path.join(base, "files", os.path.dirname(term)), os.path.join(base, os.path.dirname(term))]
        for base in bases:
            found = [p for p in sorted(glob.glob(os.path.join(base, os.path.basename(term)))) if os.path.isfile(p)]
            if found:
                out.extend(found)
                break
    return out


def lookup_items(ctx, terms):
    out = []
    for term in terms:
        out.extend(term if isinstance(term, (list, tuple)) else [term])
    return out


def lookup_list(ctx, terms):
    return list(terms)


def lookup_indexed_items(ctx, terms):
    return [[i, item] for i, item in enumerate(lookup_items(ctx, terms))]


def lookup_dict(ctx, terms):
    out = []
    for term in terms:
        if not isinstance(term, Mapping):
            raise LookupError_(f"dict lookup: expects a dictionary, got {type(term).__name__}")
        out.extend({"key": k, "value": v} for k, v in term.items())
    return out


def lookup_together(ctx, terms):
    lists = [t if isinstance(t, (list, tuple)) else [t] for t in terms]
    if not lists:
        raise LookupError_("together lookup: give at least one list")
    return [list(t) for t in itertools.zip_longest(*lists, fillvalue=None)]


def lookup_nested(ctx, terms):
    lists = [t if isinstance(t, (list, tuple)) else [t] for t in terms]
    if not lists:
        raise LookupError_("nested lookup: give at least one list")
    return [list(t) for t in itertools.product(*lists)]


def lookup_random_choice(ctx, terms):
    return [random.SystemRandom().choice(list(terms))] if terms else []


def lookup_subelements(ctx, terms, skip_missing=False):
    from gfsdeploy.templating.filters import FilterError, subelements

    terms = list(terms)
    if len(terms) == 3 and isinstance(terms[2], Mapping):
        flags = terms.pop()
        unknown = set(flags) - {"skip_missing"}
        if unknown:
            raise LookupError_(f"subelements lookup: unknown flag {sorted(unknown)[0]!r}")
        skip_missing = flags.get("skip_missing", skip_missing)
    if len(terms) != 2:
        raise LookupError_("subelements lookup: give a list (or dict) and a key, e.g. [users, 'keys']")
    try:
        pairs = subelements(terms[0], terms[1], skip_missing)
    except FilterError as exc:
        raise LookupError_(str(exc).replace("subelements:", "subelements lookup:")) from None
    # unlike the filter, the lookup's first element is the item without the list it walked
    path = terms[1].split(".") if isinstance(terms[1], str) else list(terms[1])
    out = []
    for item, sub in pairs:
        item = copy.deepcopy(item)
        inner = item
        for key in path[:-1]:
            inner = inner[key]
        inner.pop(path[-1], None)
        out.append([item, sub])
    return out


_SEQ_SHORT = re.compile(r"^(?:(-?\d+|0x[0-9a-f]+|0[0-7]+)-)?(-?\d+|0x[0-9a-f]+|0[0-7]+)(?:/(-?\d+))?(?::(.+))?$", re.I)


def _seq_int(text: str) -> int:
    return int(text, 0) if re.match(r"^-?(0x|0o)", text, re.I) else int(text, 8 if re.match(r"^0[0-7]+$", text) else 10)


def lookup_sequence(ctx, terms):
    out = []
    for term in terms:
        start, end, count, stride, fmt = 1, None, None, 1, "%d"
        text = str(term).strip()
        short = _SEQ_SHORT.match(text) if "=" not in text else None
        if short:
            if short.group(1):
                start = _seq_int(short.group(1))
            end = _seq_int(short.group(2))
            if short.group(3):
                stride = int(short.group(3))
            if short.group(4):
                fmt = short.group(4)
        else:
            for pair in text.split():
                key, eq, value = pair.partition("=")
                if not eq or key not in ("start", "end", "count", "stride", "format"):
                    raise LookupError_(f"sequence lookup: cannot parse {pair!r} "
                                       "(use start=, end=, count=, stride=, format= or 'START-END/STRIDE:FORMAT')")
                if key == "format":
                    fmt = value
                else:
                    number = _seq_int(value)
                    start, end, count, stride = (number if key == "start" else start, number if key == "end" else end,
                                                 number if key == "count" else count,
                                                 number if key == "stride" else stride)
        if count is not None:
            if end is not None:
                raise LookupError_("sequence lookup: give either end= or count=, not both")
            end = start + (count - 1) * stride if count else start - stride
        if end is None:
            raise LookupError_(f"sequence lookup: {text!r} has no end= or count=")
        if stride == 0:
            raise LookupError_("sequence lookup: stride must not be 0")
        if (stride > 0 and end < start) or (stride < 0 and end > start):
            if count == 0:
                continue
            raise LookupError_(f"sequence lookup: the sequence from {start} to {end} never ends with stride {stride}")
        step = 1 if stride > 0 else -1
        for number in range(start, end + step, stride):
            try:
                out.append(fmt % number)
            except (TypeError, ValueError):
                raise LookupError_(f"sequence lookup: bad format {fmt!r}") from None
    return out


def lookup_unvault(ctx, terms):
    from gfsdeploy import vault

    out = []
    for term in terms:
        path = ctx.find(term, "files")
        if path is None or not os.path.isfile(path):
            raise LookupError_(f"unvault lookup: could not find {term!r} (searched {ctx.where('files')})")
        with open(path, "rb") as handle:
            data = handle.read()
        out.append(vault.decrypt_file_text(data, path).rstrip("\n") if vault.is_encrypted(data)
                   else data.decode("utf-8"))
    return out


_CHAR_SETS = ("ascii_letters", "ascii_lowercase", "ascii_uppercase", "digits", "hexdigits", "octdigits",
              "printable", "punctuation", "whitespace")


def _password_chars(chars) -> str:
    import string

    if chars is None:
        names = ["ascii_letters", "digits", ".,:-_"]
    elif isinstance(chars, str):
        names = [part or "," for part in chars.replace(",,", "\0").split(",")]
        names = [n.replace("\0", ",") for n in names]
    else:
        names = [str(c) for c in chars]
    out = "".join(getattr(string, n) if n in _CHAR_SETS else n for n in names)
    if not out:
        raise LookupError_("password lookup: chars= gives no characters")
    return "".join(dict.fromkeys(out))


def lookup_password(ctx, terms, length=20, chars=None, encrypt=None, ident=None, seed=None):
    """A password kept in a file on the controller: read it when the file exists, else
    generate it and (in apply, never in plan) create the file, mode 0600; ``/dev/null``
    generates without keeping. Every password is a secret (redacted from output)."""
    from gfsdeploy import secrets
    from gfsdeploy.templating.passwords import password_hash, random_salt
    from gfsdeploy.templating.templar import KnownAfterApply

    out = []
    for term in terms:
        words = str(term).split()
        if not words:
            raise LookupError_("password lookup: give the file that keeps the password")
        path, options = words[0], {"length": length, "chars": chars, "encrypt": encrypt, "ident": ident,
                                   "seed": seed}
        for word in words[1:]:
            key, eq, value = word.partition("=")
            if not eq or key not in options:
                raise LookupError_(f"password lookup: unknown option {word!r} (length=, chars=, encrypt=, seed=)")
            options[key] = value
        try:
            size = int(options["length"])
        except (TypeError, ValueError):
            raise LookupError_(f"password lookup: length must be a number, got {options['length']!r}") from None
        alphabet = _password_chars(options["chars"])
        if not os.path.isabs(path):
            path = os.path.join(str(ctx.variables.get("playbook_dir") or (ctx.search_dirs or ["."])[0]), path)
        salt = None
        if path != "/dev/null" and os.path.exists(path):
            with open(path, encoding="utf-8") as handle:
                content = handle.read().rstrip("\n")
            password, _, rest = content.partition(" salt=")
            salt = rest.split()[0] if rest else None
        else:
            rng = random.Random(options["seed"]) if options["seed"] is not None else random.SystemRandom()
            password = "".join(rng.choice(alphabet) for _ in range(size))
            if options["encrypt"]:
                salt = random_salt(16)
            if path != "/dev/null":
                if ctx.variables.get("ansible_check_mode"):
                    raise KnownAfterApply()  # plan creates nothing: the password exists after apply
                os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(password + (f" salt={salt}" if salt else "") + "\n")
        secrets.register(password)
        if options["encrypt"]:
            hashed = password_hash(password, options["encrypt"], salt=salt, ident=options["ident"])
            secrets.register(hashed)
            out.append(hashed)
        else:
            out.append(password)
    return out


def lookup_inventory_hostnames(ctx, terms):
    """Hosts of the named groups/hosts (``a,b`` or ``a:b``), in inventory order."""
    groups = ctx.variables.get("groups") or {}
    everyone = groups.get("all", [])
    wanted: set = set()
    for term in terms:
        for part in re.split(r"[,:]", str(term)):
            part = part.strip()
            if part in groups:
                wanted.update(groups[part])
            elif part in everyone:
                wanted.add(part)
            elif part:
                raise LookupError_(f"inventory_hostnames lookup: no host or group named {part!r}")
    return [h for h in everyone if h in wanted]


LOOKUPS = {
    "env": lookup_env, "file": lookup_file, "template": lookup_template, "pipe": lookup_pipe,
    "lines": lookup_lines, "vars": lookup_vars, "varnames": lookup_varnames, "first_found": lookup_first_found,
    "fileglob": lookup_fileglob, "items": lookup_items, "list": lookup_list, "indexed_items": lookup_indexed_items,
    "dict": lookup_dict, "together": lookup_together, "nested": lookup_nested, "random_choice": lookup_random_choice,
    "subelements": lookup_subelements, "sequence": lookup_sequence, "unvault": lookup_unvault,
    "inventory_hostnames": lookup_inventory_hostnames, "password": lookup_password,
}

#: lookups Ansible has that gfsdeploy refuses, and why
REFUSED = {
    "url": "it reaches the network from the controller; fetch the content with get_url/uri on a host",
    "config": "gfsdeploy has no ansible.cfg settings",
    "csvfile": "not implemented; convert the file to YAML and use vars_files",
    "ini": "not implemented; convert the file to YAML and use vars_files",
}


def names() -> set:
    """Every lookup name a template may use (short and ``ansible.builtin.``)."""
    return set(LOOKUPS) | {f"ansible.builtin.{n}" for n in LOOKUPS}


def canonical(name: str) -> str:
    name = str(name)
    return name[len("ansible.builtin."):] if name.startswith("ansible.builtin.") else name


def run(name: str, terms, ctx: LookupContext, **kwargs) -> list:
    """Run lookup ``name`` on ``terms`` (a list); the result is always a list.
    Also what ``with_<name>:`` loops call."""
    short = canonical(name)
    fn = LOOKUPS.get(short)
    if fn is None:
        if short in REFUSED:
            raise LookupError_(f"lookup {short!r} is not supported: {REFUSED[short]}")
        from gfsdeploy.modules.base import _closest

        close = _closest(short, list(LOOKUPS))
        raise LookupError_(f"unknown lookup {name!r}" + (f"; did you mean {close!r}?" if close else "")
                           + f" (available: {', '.join(sorted(LOOKUPS))})")
    if isinstance(terms, (str, Mapping)) or not isinstance(terms, (list, tuple)):
        terms = [terms]
    try:
        result = fn(ctx, _terms(terms), **kwargs)
    except TypeError as exc:
        if "argument" in str(exc):
            raise LookupError_(f"lookup {short!r}: {exc}") from None
        raise
    return result
