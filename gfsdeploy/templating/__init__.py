"""Templating the way Ansible does it: :mod:`.templar` (rendering, lazy
variables, located errors), :mod:`.filters`, :mod:`.tests` and :mod:`.lookups`
(Ansible's names and meaning), :mod:`.analysis` (static checks before
connecting). See docs/TEMPLATING.md."""

from gfsdeploy.templating.analysis import (TemplateCheck, check_template, known_filters, known_lookups,
                                           known_tests)
from gfsdeploy.templating.templar import (OMIT, UNKNOWN_MARK, BrokenUndefined, BrokenValue, Templar, Unknown,
                                          UndefinedVariableError, Unsafe, is_unknown, show_unknown, truth, unsafe)

__all__ = ["OMIT", "UNKNOWN_MARK", "BrokenUndefined", "BrokenValue", "Templar", "TemplateCheck", "Unknown",
           "UndefinedVariableError", "check_template", "is_unknown", "known_filters", "known_lookups",
           "known_tests", "show_unknown", "truth", "Unsafe", "unsafe"]
