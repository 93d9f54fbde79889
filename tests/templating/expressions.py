"""Expressions rendered by gfsdeploy's Templar and by ansible-core's, which must agree.

Each entry is a template string; the variables are VARS. Results are compared
after JSON normalisation (tuples are lists). An expression both sides refuse
counts as agreement only when both raise."""

VARS = {
    "nums": [3, 1, 2, 3],
    "words": ["b", "a", "B", "c", "a"],
    "d1": {"a": 1, "b": {"x": 1, "y": [1, 2]}, "l": [1, 2]},
    "d2": {"b": {"y": [3], "z": 2}, "c": 3, "l": [2, 3]},
    "users": [{"name": "alice", "groups": ["wheel", "dev"], "uid": 1001},
              {"name": "bob", "groups": ["dev"], "uid": 1002}],
    "text": "Hello World\nsecond line 42\nthird 7",
    "path": "/etc/ssh/sshd_config",
    "ok_result": {"changed": False, "failed": False, "rc": 0, "stdout": "fine"},
    "bad_result": {"changed": True, "failed": True, "rc": 2, "msg": "boom"},
    "skipped_result": {"changed": False, "skipped": True},
    "loop_result": {"results": [{"changed": False}, {"changed": True}], "changed": True, "msg": "All items completed"},
    "version": "1.10.2",
    "empty": "",
    "none": None,
    "yes_str": "yes",
    "n": 5,
    "f": 2.5,
    "pairs": [{"key": "a", "value": 1}, {"key": "b", "value": 2}],
    "named": [{"k": "x", "v": 10}, {"k": "y", "v": 20}],
    "url": "https://user:pw@example.com:8443/a/b?q=1#frag",
    "tpl": "{{ n + 1 }}",
    "tpl_list": "{{ nums | unique }}",
    "tpl_text": "n is {{ n }}",
    "tpl_undefined": "{{ nope }}",
    "tpl_chain": "{{ tpl_undefined }}",
    "tpl_nested": "{{ tpl * 2 }}",
    "clusters": [{"name": "a", "nodes": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}]},
                 {"name": "b", "nodes": [{"ip": "10.0.1.1"}]}],
    "addrs": ["192.168.1.5/24", "10.0.0.1", "x", "fe80::1", "8.8.8.8", "2001:db8::5/64", "10.0.0.0/8"],
}

EXPRESSIONS = [
    # None inside text prints nothing; a whole expression keeps None
    "v={{ none }}", "{{ none }}", "{% for i in [none, 1] %}{{ i }},{% endfor %}", "{{ [none] }}",
    # set theory, order kept
    "{{ nums | unique }}", "{{ nums | union([5, 1]) }}", "{{ nums | intersect([2, 3, 9]) }}",
    "{{ nums | difference([3]) }}", "{{ nums | symmetric_difference([3, 4]) }}", "{{ words | unique }}",
    "{{ [[1], [1], [2]] | unique }}", "{{ [1, 2] | union([[3]]) }}", "{{ words | intersect(['a', 'A']) }}",
    # dicts
    "{{ d1 | combine(d2) }}", "{{ d1 | combine(d2, recursive=True) }}",
    "{{ d1 | combine(d2, list_merge='append') }}", "{{ d1 | combine(d2, recursive=True, list_merge='append') }}",
    "{{ d1 | combine(d2, recursive=True, list_merge='prepend') }}",
    "{{ d1 | combine(d2, list_merge='append_rp') }}", "{{ d1 | combine(d2, list_merge='prepend_rp') }}",
    "{{ d1 | combine(d2, list_merge='keep') }}", "{{ {} | combine([d1, d2]) }}", "{{ d1 | combine({'a': None}) }}",
    "{{ d1 | combine(d2, {'c': 4}) }}",
    "{{ d2 | dict2items }}", "{{ d2 | dict2items(key_name='k', value_name='v') }}", "{{ pairs | items2dict }}",
    "{{ named | items2dict(key_name='k', value_name='v') }}", "{{ users | rekey_on_member('name') }}",
    "{{ users | subelements('groups') }}", "{{ ['a', 'b'] | map('extract', {'a': 1, 'b': 2}) | list }}",
    "{{ 'b' | extract(d1, 'x') }}", "{{ users | map(attribute='name') | list }}",
    "{{ users | selectattr('uid', 'gt', 1001) | map(attribute='name') | list }}",
    "{{ users | groupby('uid') | map('first') | list }}",
    # lists
    "{{ [1, [2, [3, [4]]]] | flatten }}", "{{ [1, [2, [3, [4]]]] | flatten(levels=1) }}",
    "{{ [1, [2, [3, [4]]]] | flatten(2) }}", "{{ [1, None, 'None', [2, 'null']] | flatten }}",
    "{{ [1, None, [2]] | flatten(skip_nulls=False) }}",
    "{{ [1, 2] | zip(['a', 'b', 'c']) | list }}", "{{ [1, 2] | zip_longest(['a', 'b', 'c'], fillvalue='-') | list }}",
    "{{ [1, 2] | product(['a', 'b']) | list }}", "{{ [1, 2, 3] | permutations(2) | list }}",
    "{{ [1, 2, 3] | combinations(2) | list }}", "{{ nums | max }}", "{{ nums | min }}", "{{ nums | sum }}",
    "{{ words | sort }}", "{{ nums | join(',') }}", "{{ nums | length }}", "{{ nums | first }}", "{{ nums | last }}",
    # strings / regex
    "{{ text | regex_replace('(\\\\d+)', '<\\\\1>') }}", "{{ text | regex_replace('^s', 'S', multiline=True) }}",
    "{{ text | regex_replace('hello', 'bye', ignorecase=True) }}", "{{ text | regex_replace('l', 'L', count=2) }}",
    "{{ text | regex_search('\\\\d+') }}", "{{ text | regex_search('(\\\\w+) (\\\\d+)', '\\\\2', '\\\\1') }}",
    "{{ text | regex_search('(?P<w>\\\\w+) 42', '\\\\g<w>') }}", "{{ text | regex_search('nomatch') }}",
    "{{ text | regex_search('^third', multiline=True) }}", "{{ text | regex_findall('\\\\d+') }}",
    "{{ text | regex_findall('(\\\\w+) (\\\\d+)') }}", "{{ 'a.b*c' | regex_escape }}",
    "{{ 'a.b*c[d]' | regex_escape('posix_basic') }}", "{{ 'a b  c' | split }}", "{{ 'a,b,,c' | split(',') }}",
    "{{ 'a,b,c' | split(',', 1) }}", "{{ \"it's\" | quote }}", "{{ 'x y' | quote }}", "{{ none | quote }}",
    "{{ 'hello' | b64encode }}", "{{ 'aGVsbG8=' | b64decode }}", "{{ 'héllo' | b64encode }}",
    "{{ '?>?' | b64encode(urlsafe=True) }}", "{{ 'Pz4_' | b64decode(urlsafe=True) }}",
    "{{ 'hello' | hash('md5') }}", "{{ 'hello' | hash('sha256') }}", "{{ 'hello' | hash }}",
    "{{ 'hello' | md5 }}", "{{ 'hello' | sha1 }}", "{{ 'hello' | checksum }}", "{{ 'host1' | to_uuid }}",
    "{{ 'x' | to_uuid(namespace='11111111-2222-3333-4444-555555555555') }}",
    "{{ 'a\\nb' | comment }}", "{{ 'a\\nb' | comment('c') }}", "{{ 'a\\nb' | comment('cblock') }}",
    "{{ 'a' | comment('xml') }}", "{{ 'a' | comment('erlang') }}",
    "{{ 'a' | comment(decoration='; ') }}", "{{ 'a' | comment(prefix='#!', postfix='#') }}",
    # ternary / bool
    "{{ true | ternary('y', 'n') }}", "{{ 0 | ternary('y', 'n') }}", "{{ none | ternary('y', 'n', 'null') }}",
    "{{ none | ternary('y', 'n') }}", "{{ 'yes' | bool }}", "{{ 'Off' | bool }}", "{{ 1 | bool }}",
    "{{ 'true' | bool }}", "{{ 'TRUE' | bool }}", "{{ '1' | bool }}", "{{ 0 | bool }}", "{{ 'nope' | bool }}",
    # json / yaml
    "{{ d1 | to_json }}", "{{ d1 | to_json(sort_keys=True) }}", "{{ d1 | to_nice_json }}",
    "{{ d1 | to_nice_json(indent=2) }}", "{{ {'u': 'é'} | to_json }}", "{{ {'u': 'é'} | to_nice_json }}",
    "{{ '{\"a\": [1, 2]}' | from_json }}", "{{ d1 | to_yaml }}", "{{ d1 | to_nice_yaml }}",
    "{{ d1 | to_nice_yaml(indent=2) }}", "{{ users | to_yaml }}", "{{ users | to_nice_yaml }}",
    "{{ 'a: 1\\nb: [x]' | from_yaml }}", "{{ 'a: 1\\n---\\nb: 2' | from_yaml_all | list }}",
    "{{ {'u': 'é', 's': 'multi\\nline'} | to_yaml }}", "{{ [] | to_yaml }}", "{{ 'x' | to_yaml }}",
    # paths
    "{{ path | basename }}", "{{ path | dirname }}", "{{ '/a/b/' | basename }}", "{{ '/a/b/' | dirname }}",
    "{{ 'archive.tar.gz' | splitext }}", "{{ ['/a', 'b', 'c'] | path_join }}", "{{ 'a' | path_join }}",
    "{{ '/a/./b/../c' | normpath }}", "{{ ['/a/b/c', '/a/b/d'] | commonpath }}",
    "{{ '/a/b/c' | relpath('/a') }}", "{{ 'C:\\\\x\\\\y.txt' | win_basename }}",
    "{{ 'C:\\\\x\\\\y.txt' | win_dirname }}", "{{ 'C:\\\\x' | win_splitdrive }}",
    "{{ '/' | realpath }}",
    # numbers
    "{{ 8 | log(2) }}", "{{ 100 | log(10) }}", "{{ 2 | pow(10) }}", "{{ 16 | root }}", "{{ 27 | root(3) }}",
    "{{ 1536 | human_readable }}", "{{ 10 | human_readable }}", "{{ 1048576 | human_readable(isbits=True) }}",
    "{{ 1048576 | human_readable(unit='K') }}", "{{ '1.5K' | human_to_bytes }}", "{{ '10M' | human_to_bytes }}",
    "{{ '2G' | human_to_bytes }}", "{{ '10' | human_to_bytes }}", "{{ '10Mb' | human_to_bytes(isbits=True) }}",
    "{{ '3' | human_to_bytes(default_unit='K') }}", "{{ n | int + 1 }}", "{{ f | round }}", "{{ '12' | int }}",
    # urls
    "{{ url | urlsplit }}", "{{ url | urlsplit('hostname') }}", "{{ url | urlsplit('port') }}",
    "{{ 'a%20b+c' | urldecode }}", "{{ {'a': 'b c', 'd': 1} | urlencode }}",
    # tests
    "{{ ok_result is succeeded }}", "{{ ok_result is success }}", "{{ ok_result is failed }}",
    "{{ bad_result is failed }}", "{{ bad_result is failure }}", "{{ bad_result is changed }}",
    "{{ ok_result is changed }}", "{{ skipped_result is skipped }}", "{{ ok_result is skipped }}",
    "{{ loop_result is changed }}", "{{ {'results': [{'changed': True}]} is changed }}",
    "{{ ok_result is reachable }}", "{{ {'unreachable': True} is unreachable }}",
    "{{ ok_result is finished }}", "{{ {'finished': 0} is finished }}", "{{ ok_result is started }}",
    "{{ nope is defined }}", "{{ nope is undefined }}", "{{ n is defined }}", "{{ none is defined }}",
    "{{ d1.a is defined }}", "{{ d1.zz is defined }}", "{{ d1['b']['x'] is defined }}",
    "{{ version is version('1.9', '>') }}", "{{ version is version('1.10.2', 'eq') }}",
    "{{ version is version('1.10.10', 'lt') }}", "{{ version is version_compare('1.10', '>=') }}",
    "{{ '1.0a' is version('1.0b', '<') }}", "{{ '2.0' is version('2.0.0', '==') }}",
    "{{ '1.2.3' is version('1.2.3-rc1', '>', version_type='semver') }}",
    "{{ '1.2.3-alpha.1' is version('1.2.3-alpha.beta', '<', version_type='semver') }}",
    "{{ '1.2.3-alpha' is version('1.2.3-alpha.1', '<', version_type='semver') }}",
    "{{ '1.2' is version('1.2.0', '==', strict=True) }}", "{{ '1.2a1' is version('1.2', '<', strict=True) }}",
    "{{ '1.2b1' is version('1.2a2', '>', version_type='strict') }}",
    "{{ '1.0.0rc1' is version('1.0.0', '<', version_type='pep440') }}",
    "{{ 'v1.2' is version('v1.10', '<') }}", "{{ '1.2.3' is version('1.2.4', 'ne') }}",
    "{{ '1.2.3' is version('1.2.3', '!=') }}", "{{ '10' is version('9', 'gt') }}",
    "{{ text is match('Hello') }}", "{{ text is match('World') }}", "{{ text is search('World') }}",
    "{{ text is search('world', ignorecase=True) }}", "{{ text is regex('^second', multiline=True) }}",
    "{{ text is regex('Hello', match_type='match') }}", "{{ 'abc' is regex('abc', match_type='fullmatch') }}",
    "{{ [1, 2] is subset([1, 2, 3]) }}", "{{ [1, 2, 3] is superset([3]) }}", "{{ [1, 2] is contains(2) }}",
    "{{ [true, false] is any }}", "{{ [true, false] is all }}", "{{ 'yes' is truthy }}", "{{ '' is falsy }}",
    "{{ 'no' is truthy(convert_bool=True) }}", "{{ 'no' is truthy }}",
    "{{ '/' is directory }}", "{{ '/' is abs }}", "{{ 'a' is abs }}", "{{ '/nonexistent' is exists }}",
    "{{ '/etc/hostname' is file }}", "{{ '/' is mount }}", "{{ '/' is same_file('/') }}",
    "{{ 'https://x.org/a' is url }}", "{{ 'urn:isbn:1' is urn }}", "{{ 'x' is uri }}",
    "{{ 'x' is string }}", "{{ 5 is number }}", "{{ d1 is mapping }}", "{{ nums is sequence }}",
    "{{ n is divisibleby(5) }}", "{{ n is even }}", "{{ none is none }}", "{{ 'a' is in(['a']) }}",
    "{{ nums | select('gt', 1) | list }}", "{{ nums | reject('equalto', 3) | list }}",
    "{{ ansible.builtin is defined }}",
    "{{ nums | ansible.builtin.union([7]) }}", "{{ 'x' is ansible.builtin.string }}",
    "{{ d1 | ansible.builtin.dict2items | length }}",
    # default / mandatory
    "{{ nope | default('d') }}", "{{ empty | default('d', true) }}", "{{ nope | d('x') }}",
    "{{ n | mandatory }}",
    # errors both must raise
    "{{ nope }}", "{{ nope | mandatory }}", "{{ 'x' | dict2items }}", "{{ 5 | items2dict }}",
    "{{ 'abc' | from_json }}", "{{ 'a' | hash('nosuch') }}", "{{ 1 | nosuchfilter }}", "{{ 1 is nosuchtest }}",
    "{{ '1.0a' is version('1.0.1', '<') }}", "{{ 'x' is version('1', 'bogus') }}",
    "{{ 'abc' is version('1.0', '<', strict=True) }}", "{{ 'x' | combine({}) }}",
]

# template strings as YAML gives them: backslashes inside {{ }} string literals are literal
EXPRESSIONS += [
    r"{{ 'ab' | regex_replace('(a)', '\1X') }}", r"{{ 'ab' | regex_replace('(a)', '\\1X') }}",
    r"{{ 'a\nb' }}", r"{{ 'a\nb' | length }}", r"x{{ 'a\tb' }}y", r"{{ 'a\'b' }}", r'{{ "a\"b" }}',
    r"{{ text | regex_replace('(\d+)', '<\1>') }}", r"{{ text | regex_search('(\w+) (\d+)', '\2', '\1') }}",
    r"{{ text | regex_findall('\d+') }}", r"{% set x = 'a\nb' %}{{ x | length }} chars", r"{{ '\u00e9' }}",
    r"{{ 'C:\x\y' | win_basename }}",
]

# undefined chains and lazily rendered variables
EXPRESSIONS += [
    "{{ nope.attr is defined }}", "{{ nope['x']['y'] is defined }}", "{{ d1.nope.deeper is defined }}",
    "{{ nope.attr | default('z') }}", "{{ d1.nope | default('z') }}", "{{ nope.attr }}",
    "{{ tpl }}", "{{ tpl_list }}", "{{ tpl_text }}", "{{ tpl_nested }}", "{{ tpl_undefined is defined }}",
    "{{ tpl_undefined | default('fallback') }}", "{{ tpl_chain is defined }}", "{{ tpl_chain | default(1) }}",
    "{{ tpl_undefined }}", "x{{ tpl_chain }}",
]

# lookups
EXPRESSIONS += [
    "{{ lookup('env', 'HOME') }}", "{{ lookup('env', 'GFS_SURELY_UNSET') }}",
    "{{ lookup('env', 'GFS_SURELY_UNSET', default='d') }}", "{{ lookup('env', 'HOME', 'HOME') }}",
    "{{ query('env', 'HOME') }}",
    "{{ query('items', [1, [2]], 3) }}", "{{ lookup('items', [1, 2]) }}", "{{ lookup('items', ['a', 'b']) }}",
    "{{ lookup('list', ['a', 'b']) }}", "{{ lookup('sequence', 'start=1 end=5') }}",
    "{{ query('sequence', 'count=3 format=host%02d') }}", "{{ query('sequence', '1-10/3') }}",
    "{{ query('sequence', 'start=10 end=0 stride=-5') }}",
    "{{ query('together', [1, 2], ['a']) }}", "{{ query('nested', [1, 2], ['a', 'b']) }}",
    "{{ query('indexed_items', ['a', 'b']) }}", "{{ query('dict', d2) }}",
    "{{ query('subelements', users, 'groups') }}", "{{ lookup('vars', 'n') }}", "{{ lookup('vars', 'tpl') }}",
    "{{ lookup('vars', 'nope', default='x') }}", "{{ lookup('vars', 'nope') }}",
    "{{ lookup('pipe', 'echo hi; echo there') }}", "{{ lookup('pipe', 'exit 3') }}",
    "{{ query('lines', 'printf \"a\\\\nb\\\\n\"') }}",
    "{{ lookup('file', 'data.txt') }}", "{{ lookup('file', 'data.txt', rstrip=False) }}",
    "{{ lookup('file', 'missing.txt') }}", "{{ lookup('file', 'missing.txt', errors='ignore') }}",
    "{{ lookup('template', 'greet.j2') }}",
    "{{ lookup('first_found', ['missing.txt', 'files/data.txt']) | basename }}",
    "{{ lookup('first_found', ['missing.txt', 'data.txt']) | basename }}",
    "{{ query('first_found', ['missing.txt'], skip=True) }}", "{{ lookup('first_found', ['missing.txt']) }}",
    "{{ lookup('first_found', {'files': ['nope.txt', 'b.txt'], 'paths': ['files']}) | basename }}",
    "{{ query('fileglob', '*.txt') | map('basename') | sort }}", "{{ lookup('nosuchlookup', 'x') }}",
    "{{ query('random_choice', 'a') }}",
    "{{ query('inventory_hostnames', 'all') }}",
]

# password_hash (ansible-core hashes with passlib, a test dependency)
EXPRESSIONS += [
    "{{ 'secret' | password_hash('sha512', 'mysalt') }}",
    "{{ 'secret' | password_hash('sha256', 'mysalt', rounds=5000) }}",
    "{{ 'secret' | password_hash('sha512', 'abcdefgh', rounds=10000) }}",
    "{{ 'secret' | password_hash('sha256_crypt', 'abcdefgh') }}",
]

# trailing line break after a lone expression; mutable sandbox
EXPRESSIONS += [
    "{{ n }}\n", "{{ text }}\n", "x{{ n }}\n", "{{ n }}\n\n", "{{ nums }}\n", "{{ n }} ",
    "{% set l = [] %}{% if l.append(1) %}{% endif %}{{ l }} items", "{{ {'a': 1}.items() | list }}",
]

# collections' filters (the `ansible` package: community.general, ansible.utils with netaddr)
EXPRESSIONS += [
    "{{ clusters | json_query('[].name') }}", "{{ clusters | json_query('[].nodes[].ip') }}",
    "{{ clusters | json_query(\"[?name=='b'].nodes[0].ip | [0]\") }}", "{{ clusters | json_query('nothing') }}",
    "{{ clusters | community.general.json_query('length(@)') }}", "{{ 'x' | community.general.dict_kv('k') }}",
    "{{ clusters | json_query('[') }}", "{{ lookup('ansible.builtin.env', 'HOME') }}",
]
for query in ["", "address", "network", "netmask", "hostmask", "prefix", "broadcast", "subnet", "cidr", "host",
              "net", "size", "version", "public", "private", "loopback", "multicast", "link-local", "unicast",
              "host/prefix", "address/prefix", "first_usable", "last_usable", "next_usable", "previous_usable",
              "range_usable", "revdns", "wrap", "0", "1", "4", "-1", "ipv4", "ipv6", "bool", "int", "lo"]:
    for addr in ["192.168.1.5/24", "10.0.0.1", "x", "fe80::1", "8.8.8.8", "2001:db8::5/64", "10.0.0.0/8",
                 "10.1.2.3/32", "10.0.0.0/31", "10.0.0.1/31", "::ffff:10.0.0.1", "127.0.0.1", "224.0.0.1", "",
                 "1.2.3.4/33"]:
        EXPRESSIONS.append(f"{{{{ '{addr}' | ansible.utils.ipaddr('{query}') }}}}")
EXPRESSIONS += [
    "{{ addrs | ansible.utils.ipaddr }}", "{{ addrs | ansible.utils.ipv4 }}", "{{ addrs | ansible.utils.ipv6 }}",
    "{{ addrs | ansible.utils.ipv4('address') }}", "{{ addrs | ansible.utils.ipwrap }}",
    "{{ '10.0.0.1' | ansible.utils.ipmath(5) }}", "{{ '10.0.0.0/24' | ansible.utils.nthhost(10) }}",
    "{{ '10.0.0.0/24' | ansible.utils.network_in_usable('10.0.0.7') }}",
    "{{ '10.0.0.0/24' | ansible.utils.network_in_usable('10.0.0.255') }}",
    "{{ '10.0.0.0/24' | ansible.utils.network_in_network('10.0.0.0/25') }}",
    "{{ '10.0.0.0/24' | ansible.utils.ipsubnet(26) }}", "{{ '10.0.0.5' | ansible.utils.ipaddr('bogus') }}",
    "{{ '10.0.0.0/24' | ansible.utils.ipsubnet }}", "{{ '10.0.0.0/24' | ansible.utils.ipsubnet(26, 1) }}",
    "{{ '10.0.0.0/24' | ansible.utils.ipsubnet(23) }}", "{{ '10.0.0.1' | ansible.utils.ipmath(-1) }}",
    "{{ '10.0.0.1/24' | ansible.utils.ipmath(2) }}", "{{ '10.0.0.0/24' | ansible.utils.nthhost(-1) }}",
    "{{ '10.0.0.0/24' | ansible.utils.nthhost(300) }}", "{{ '10.0.0.5' | ansible.utils.nthhost(1) }}",
    "{{ '10.0.0.0/24' | ansible.utils.network_in_network('10.0.1.0/25') }}",
    "{{ '10.0.0.0/24' | ansible.utils.network_in_network('10.0.0.7') }}",
    "{{ '10.0.0.0/24' | ansible.utils.network_in_usable('10.0.0.0') }}", "{{ none | ansible.utils.ipaddr }}",
    "{{ true | ansible.utils.ipaddr }}", "{{ 167772161 | ansible.utils.ipaddr }}", "{{ [] | ansible.utils.ipaddr }}",
    "{{ addrs | ansible.utils.ipaddr('address') }}", "{{ addrs | ansible.utils.ipaddr('network') }}",
    "{{ 'fe80::1' | ansible.utils.ipv4 }}", "{{ '10.0.0.1' | ansible.utils.ipv6 }}",
    "{{ '10.0.0.1/24' | ansible.utils.ipv6('address') }}", "{{ addrs | ansible.utils.ipaddr('private') }}",
]

# Ansible's globals
EXPRESSIONS += ["{{ now() is string }}", "{{ now().year > 2000 }}", "{{ now(utc=True, fmt='%Y') | length }}",
                "{{ undef() is defined }}", "{{ undef(hint='x') | default(3) }}", "{{ undef(hint='gone') }}"]

# ansible.utils tests, community.general.dict
for value in ["10.0.0.1", "10.0.0.1/24", "10.0.0.0/24", "fe80::1", "2001:db8::/32", "x", "8.8.8.8", "127.0.0.1"]:
    for test in ["ip", "ipv4", "ipv6", "ip_address", "ipv4_address", "ipv6_address", "private", "public",
                 "loopback", "multicast"]:
        EXPRESSIONS.append(f"{{{{ '{value}' is ansible.utils.{test} }}}}")
EXPRESSIONS += ["{{ '10.0.0.1' is ansible.utils.in_network('10.0.0.0/8') }}",
                "{{ '11.0.0.1' is ansible.utils.in_network('10.0.0.0/8') }}",
                "{{ [['a', 1], ['b', 2]] | community.general.dict }}", "{{ 'a=1 b=2' | split | map('split', '=') | community.general.dict }}"]

# the newlines ending a template end its result (Jinja's trim_blocks dropped the one after
# a closing block tag when it was the last character; Ansible puts it back)
EXPRESSIONS += ["{% for h in [1, 2] %}{{ h }} {% endfor %}\n", "a {% if true %}b{% endif %}\n",
                "{% if true %}x{% endif %}\n\n", "x\n{% if true %}y{% endif %}\n", "a {% if true %}b{% endif %}\nc",
                "{% for h in [1, 2] %}{{ h }}\n{% endfor %}", "{{ 'a' }}{% if false %}b{% endif %}\n\n\n",
                # ... but a value ending with its own newline gets none added ("{{ x }}\n", x "a\n": "a\n")
                "{{ text ~ '\\n' }}\n", "v={{ text ~ '\\n' }}\n", "v={{ text ~ '\\n' }}\n\n", "{{ text ~ '\\n\\n' }}\n",
                "{% if true %}{{ text ~ '\\n' }}{% endif %}\n"]
