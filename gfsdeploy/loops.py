"""Loop items: ``loop:`` and Ansible's ``with_<lookup>`` forms, computed on the
controller from the task's (rendered) terms. What each lookup yields is written
down in docs/ANSIBLE-STRUCTURE.md; the order and shape of items match Ansible's
so registered ``results`` line up item by item."""

from __future__ import annotations

import glob
import itertools
import os
import random
import shlex

from gfsdeploy.errors import GfsError


def items(lookup: str | None, terms, *, where: dict, find, select_hosts=None) -> list:
    """The items of a loop. ``lookup`` is the ``with_<name>`` (None for ``loop:``);
    ``terms`` its rendered value; ``find(subdir, name)`` finds a controller file the
    way the task's search path does (role files/, the playbook dir …) or returns None."""
    def fail(message, fix):
        raise GfsError(message, **where, field=f"with_{lookup}" if lookup else "loop", fix=fix)

    if lookup is None:
        if isinstance(terms, str):
            return [terms]
        if not isinstance(terms, list):
            fail(f"`loop` must give a list, got {type(terms).__name__}",
                 "loop over a list, e.g. `loop: \"{{ groups['all'] }}\"` (a mapping: `| dict2items`)")
        return list(terms)
    if lookup in ("items", "flattened", "list", "indexed_items", "random_choice", "together", "nested", "cartesian",
                  "fileglob", "first_found", "lines", "inventory_hostnames", "sequence") \
            and not isinstance(terms, list):
        terms = [terms]
    if lookup == "items":
        out = []
        for term in terms:
            out.extend(term if isinstance(term, list) else [term])
        return out
    if lookup == "list":
        return list(terms)
    if lookup == "flattened":
        return _flatten(terms)
    if lookup == "indexed_items":
        flat = []
        for term in terms:
            flat.extend(term if isinstance(term, list) else [term])
        return [[i, x] for i, x in enumerate(flat)]
    if lookup == "dict":
        if isinstance(terms, list) and len(terms) == 1:
            terms = terms[0]
        if not isinstance(terms, dict):
            fail(f"with_dict expects a mapping, got {type(terms).__name__}", "give it a mapping (`{{ mydict }}`)")
        return [{"key": k, "value": v} for k, v in terms.items()]
    if lookup == "subelements":
        return _subelements(terms, fail)
    if lookup in ("together",):
        lists = [t if isinstance(t, list) else [t] for t in terms]
        return [list(row) for row in itertools.zip_longest(*lists)]
    if lookup in ("nested", "cartesian"):
        lists = [t if isinstance(t, list) else [t] for t in terms]
        return [list(row) for row in itertools.product(*lists)] if lists else []
    if lookup == "random_choice":
        return [random.choice(terms)] if terms else []
    if lookup == "sequence":
        out = []
        for term in terms:
            out.extend(_sequence(str(term), fail))
        return out
    if lookup == "fileglob":
        out = []
        for term in terms:
            pattern = str(term)
            if not os.path.isabs(pattern):
                base = find("files", os.path.dirname(pattern) or ".")
                if base is None:
                    continue
                pattern = os.path.join(base, os.path.basename(pattern))
            out.extend(sorted(p for p in glob.glob(pattern) if os.path.isfile(p)))
        return out
    if lookup == "first_found":
        return _first_found(terms, find, fail)
    if lookup == "lines":
        out = []
        for term in terms:
            import subprocess  # only for with_lines (start-up stays light)

            proc = subprocess.run(str(term), shell=True, capture_output=True, text=True, timeout=300)
            if proc.returncode != 0:
                fail(f"with_lines: {term!r} exited {proc.returncode}: {proc.stderr.strip()[:300]}",
                     "fix the command (it runs on the controller)")
            out.extend(proc.stdout.splitlines())
        return out
    if lookup == "inventory_hostnames":
        out = []
        for term in terms:
            for host in select_hosts(str(term)):
                if host not in out:
                    out.append(host)
        return out
    fail(f"`with_{lookup}` is not supported", "use `loop:` with a filter")
    return []


def _flatten(value) -> list:
    out = []
    for x in value:
        out.extend(_flatten(x) if isinstance(x, list) else [x])
    return out


def _subelements(terms, fail) -> list:
    if not isinstance(terms, list) or len(terms) not in (2, 3):
        fail("with_subelements expects [list, 'key'] (and optionally {skip_missing: true})",
             "write `with_subelements: [\"{{ users }}\", authorized]`")
    source, key = terms[0], terms[1]
    flags = terms[2] if len(terms) == 3 else {}
    if not isinstance(flags, dict) or set(flags) - {"skip_missing"}:
        fail("the third term of with_subelements may only be {skip_missing: true|false}", "fix the flags")
    skip = bool(flags.get("skip_missing", False))
    if isinstance(source, dict):
        source = list(source.values())
    if not isinstance(source, list):
        fail(f"with_subelements: the first term must be a list, got {type(source).__name__}", "give a list of mappings")
    out = []
    for element in source:
        if not isinstance(element, dict):
            fail("with_subelements: the list must hold mappings", "give a list of mappings")
        if element.get("skipped") is True:
            continue
        value = element
        missing = False
        for part in str(key).split("."):
            if isinstance(value, dict) and part in value:
                value = value[part]
            else:
                missing = True
                break
        if missing:
            if skip:
                continue
            fail(f"with_subelements: an element has no {key!r}", "add the key, or pass {skip_missing: true}")
        if not isinstance(value, list):
            fail(f"with_subelements: {key!r} must be a list in every element", "make it a list")
        # Ansible hands the element without the key it iterates (item.0 has no `keys`)
        parts = str(key).split(".")
        outer = dict(element)
        if len(parts) == 1:
            outer.pop(parts[0], None)
        for sub in value:
            out.append([outer, sub])
    return out


def _sequence(term: str, fail) -> list[str]:
    """``start=1 end=10 stride=2 format=x%02d`` or ``count=N`` or ``[start-]end[/stride][:format]``."""
    opts: dict = {}
    words = shlex.split(term)
    if words and all("=" in w for w in words):
        for w in words:
            k, _, v = w.partition("=")
            opts[k.strip()] = v.strip()
    else:
        text = term.strip()
        fmt = None
        if ":" in text:
            text, fmt = text.split(":", 1)
        stride = None
        if "/" in text:
            text, stride = text.split("/", 1)
        if "-" in text.lstrip("-")[0:] and not text.startswith("-"):
            start, end = text.split("-", 1)
            opts.update(start=start, end=end)
        else:
            opts["end"] = text
        if stride:
            opts["stride"] = stride
        if fmt:
            opts["format"] = fmt
    unknown = set(opts) - {"start", "end", "count", "stride", "format"}
    if unknown:
        fail(f"with_sequence: unknown option {sorted(unknown)[0]!r}", "use start, end, count, stride, format")

    def num(key, default):
        value = opts.get(key, default)
        try:
            return int(str(value), 0)
        except ValueError:
            fail(f"with_sequence: {key}={value!r} is not a number", f"write {key}=5")
            return 0

    start, stride = num("start", 1), num("stride", 1)
    if "count" in opts and "end" in opts:
        fail("with_sequence: give count or end, not both", "keep one")
    if "count" in opts:
        count = num("count", 0)
        end = start + (count - 1) * stride if count else start - stride
    elif "end" in opts:
        end = num("end", 0)
    else:
        fail("with_sequence needs end= or count=", "write e.g. `with_sequence: start=1 end=5`")
        return []
    if stride == 0:
        return []
    if (stride > 0 and end < start) or (stride < 0 and end > start):
        fail("with_sequence: the end is before the start for this stride", "swap start and end, or use a negative stride")
    fmt = opts.get("format", "%d")
    values = range(start, end + (1 if stride > 0 else -1), stride)
    try:
        return [fmt % v for v in values]
    except (TypeError, ValueError):
        fail(f"with_sequence: bad format {fmt!r}", "use a printf format such as %02d")
        return []


def _first_found(terms, find, fail) -> list:
    files, paths, skip = [], [], False
    for term in terms:
        if isinstance(term, dict):
            bad = set(term) - {"files", "paths", "skip"}
            if bad:
                fail(f"first_found: unknown option {sorted(bad)[0]!r}", "use files, paths, skip")
            files += _split_list(term.get("files"))
            paths += _split_list(term.get("paths"))
            skip = skip or bool(term.get("skip", False))
        else:
            files += _split_list(term)
    candidates = []
    for name in files:
        if paths and not os.path.isabs(name):
            candidates += [os.path.join(p, name) for p in paths]
        else:
            candidates.append(name)
    for candidate in candidates:
        if os.path.isabs(candidate):
            if os.path.exists(candidate):
                return [candidate]
            continue
        found = find("files", candidate)
        if found is not None:
            return [found]
    if skip:
        return []
    fail("first_found: none of the files exists: " + ", ".join(map(str, candidates)),
         "create one of them, or pass {files: […], skip: true}")
    return []


def _split_list(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    text = str(value)
    for sep in (",", ";"):
        if sep in text:
            return [p.strip() for p in text.split(sep) if p.strip()]
    return [text]


def loop_vars(task, item, index: int, all_items: list) -> dict:
    """What one iteration defines: the loop variable, ``index_var``, ``ansible_loop``."""
    control = task.loop_control or {}
    out = {task.loop_var: item, "ansible_loop_var": task.loop_var}
    if control.get("index_var"):
        out[control["index_var"]] = index
        out["ansible_index_var"] = control["index_var"]
    length = len(all_items)
    loop = {"index": index + 1, "index0": index, "revindex": length - index, "revindex0": length - index - 1,
            "first": index == 0, "last": index == length - 1, "length": length}
    if index > 0:
        loop["previtem"] = all_items[index - 1]
    if index < length - 1:
        loop["nextitem"] = all_items[index + 1]
    if control.get("extended_allitems", True):
        loop["allitems"] = all_items
    out["ansible_loop"] = loop
    return out
