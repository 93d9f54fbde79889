"""The transport without a lab: the wrapper every script runs in (exit codes,
stdout/stderr, a cut-short script never runs, a dead controller ends the
script or lets it finish), stop semantics, pty framing, ssh args and
ssh_config, and what sudo/su said mapped to clear errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from gfsdeploy.errors import TransportError
from gfsdeploy.transport import (Become, BecomeError, Stopped, abort_running, clear_stop, make_transport,
                                 request_stop, resolve_become, stop_requested)
from gfsdeploy.transport import become as become_mod
from gfsdeploy.transport import sshconfig
from gfsdeploy.transport.local import LocalTransport
from gfsdeploy.transport.wrapper import INCOMPLETE, frame_script, wrapper


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except (ProcessLookupError, FileNotFoundError):  # (gone between the two looks)
        return False


def _wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


# -- the wrapper -----------------------------------------------------------------------
@pytest.mark.parametrize("shell", ["dash", "bash"])
def test_exit_code_stdout_and_stderr_arrive_apart(shell):
    if not os.path.exists(f"/bin/{shell}"):
        pytest.skip(f"{shell} not installed")
    script = "echo out; echo err >&2; printf 'no newline'; exit 7"
    data = frame_script(script, "t0k")
    proc = subprocess.Popen([shell, "-c", wrapper(token="t0k", length=len(data))], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdin.write(data)
    proc.stdin.flush()
    out, err = proc.stdout.read(), proc.stderr.read()
    rc = proc.wait()
    proc.stdin.close()
    assert (rc, out, err) == (7, b"t0k\nout\nno newline", b"err\n")


def test_the_last_command_decides_the_exit_code():
    t = LocalTransport("h")
    assert t.run("false").rc == 1
    assert t.run("true").rc == 0
    assert t.run("printf x").stdout == "x"


def test_script_values_are_not_expanded_again(tmp_path):
    canary = tmp_path / "canary"
    script = f"echo '$(touch {canary})' \"\\$HOME\" '`id`'; echo 'EOF'; echo t0k"
    r = LocalTransport("h").run(script)
    assert r.stdout == f"$(touch {canary}) $HOME `id`\nEOF\nt0k\n"
    assert not canary.exists()


def test_a_cut_short_script_never_runs(tmp_path):
    marker = tmp_path / "ran"
    data = frame_script(f"touch {marker}; touch {marker}2", "t0k")
    proc = subprocess.run(["sh", "-c", wrapper(token="t0k", length=len(data))], input=data[:-12],
                          capture_output=True)
    assert proc.returncode == INCOMPLETE
    assert b"arrived incomplete" in proc.stderr
    assert not marker.exists() and not (tmp_path / "ran2").exists()


def test_large_script_and_binary_safe_text():
    payload = "a" * 300_000
    r = LocalTransport("h").run(f"x='{payload}'\nprintf '%s' \"${{#x}}\"")
    assert r.rc == 0 and r.stdout == "300000"


def _child_running(tmp_path, mode: str, pty: bool = False):
    """A controller process that starts a 4 s script and prints its pid, then is killed."""
    pidfile = tmp_path / f"pid-{mode}"
    done = tmp_path / f"done-{mode}"
    proc = _controller_running(f"echo $$ > {pidfile}; sleep 4; echo finished > {done}", pidfile, mode, pty)
    return proc, int(pidfile.read_text()), done


def _controller_running(script: str, pidfile, mode: str, pty: bool = False):
    """A controller process running ``script`` on a local transport, once ``script`` has
    written its pid to ``pidfile``."""
    code = textwrap.dedent(f"""
        import sys
        from gfsdeploy.transport.local import LocalTransport
        t = LocalTransport("h")
        print("go", flush=True)
        t._run_once({script!r}, None, 60, {mode!r}, pty={pty})
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.stdout.readline().strip() == "go"
    deadline = time.monotonic() + 10
    while not pidfile.exists() or not pidfile.read_text().strip():
        assert time.monotonic() < deadline, "the script did not start"
        time.sleep(0.05)
    return proc


@pytest.mark.parametrize("pty", [False, True])
def test_killed_controller_ends_the_script(tmp_path, pty):
    proc, pid, done = _child_running(tmp_path, "kill", pty)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _wait_gone(pid, 5), "the script outlived its controller"
    time.sleep(4.5)
    assert not done.exists()


def test_killed_controller_lets_a_finish_script_complete(tmp_path):
    proc, pid, done = _child_running(tmp_path, "finish")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while not done.exists():
        assert time.monotonic() < deadline, "a finish script was cut short"
        time.sleep(0.1)
    assert done.read_text() == "finished\n"


def test_silent_controller_counts_as_gone():
    """No heartbeat for `silence` seconds: the host ends the script (the link may be dead
    without a FIN: a laptop closed, a VPN dropped)."""
    data = frame_script("sleep 30", "t0k")
    proc = subprocess.Popen(["sh", "-c", wrapper(token="t0k", length=len(data), silence=1)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdin.write(data)
    proc.stdin.flush()
    started = time.monotonic()
    proc.wait(15)
    assert time.monotonic() - started < 8
    proc.stdin.close()


def test_heartbeats_keep_a_long_script_alive(tmp_path):
    t = LocalTransport("h")
    t.heartbeat, t.silence = 0.3, 1
    r = t.run("sleep 2.5; echo survived")
    assert r.rc == 0 and r.stdout == "survived\n"


def test_pty_keeps_stdout_and_stderr_apart():
    t = LocalTransport("h")
    r = t._run_once("echo out; echo err >&2; printf 'a\\tb\\r\\nc'; exit 3", None, 30, "kill", pty=True)
    assert (r.rc, r.stdout, r.stderr) == (3, "out\na\tb\r\nc", "err\n")
    big = t._run_once("x=" + "b" * 100_000 + "\necho ${#x}", None, 30, "kill", pty=True)
    assert big.stdout == "100000\n"


# -- stopping ------------------------------------------------------------------------------
def test_stop_refuses_new_commands_until_cleared(tmp_path):
    t = LocalTransport("h")
    try:
        request_stop()
        assert stop_requested()
        with pytest.raises(Stopped) as info:
            t.run(f"touch {tmp_path / 'x'}")
        assert "no new command" in str(info.value)
        assert not (tmp_path / "x").exists() and t.round_trips == 0
        # cleanup that must still happen (releasing a lock) says so
        assert t.run(f"touch {tmp_path / 'cleanup'}", after_stop=True).rc == 0
        assert (tmp_path / "cleanup").exists()
    finally:
        clear_stop()
    assert t.run("true").rc == 0


def _in_flight(tmp_path, kind):
    t = LocalTransport("h")
    pidfile = tmp_path / f"pid-{kind}"
    done = tmp_path / f"done-{kind}"
    errors = []

    def run():
        try:
            t.run(f"echo $$ > {pidfile}; sleep 3; echo ok > {done}", kind=kind)
        except TransportError as exc:
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 10
    while not pidfile.exists() or not pidfile.read_text().strip():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return worker, errors, int(pidfile.read_text()), done


def test_abort_cuts_reads_in_flight_and_lets_changes_finish(tmp_path):
    read, read_errors, read_pid, read_done = _in_flight(tmp_path, "read")
    change, change_errors, change_pid, change_done = _in_flight(tmp_path, "run")
    try:
        abort_running()
        for worker in (read, change):
            worker.join(15)
            assert not worker.is_alive()
        assert isinstance(read_errors[0], Stopped) and isinstance(change_errors[0], Stopped)
        assert _wait_gone(read_pid, 5)
        deadline = time.monotonic() + 10
        while not change_done.exists():
            assert time.monotonic() < deadline, "a change was cut half-way"
            time.sleep(0.1)
        assert not read_done.exists()
    finally:
        clear_stop()


# -- become ------------------------------------------------------------------------------
def test_become_is_resolved_with_ansible_precedence():
    assert resolve_become({}, become=False) is None
    b = resolve_become({}, become=True, become_user="app", become_method="su")
    assert (b.user, b.method, b.password) == ("app", "su", None)
    # connection variables beat keywords
    v = {"ansible_become": True, "ansible_become_user": "db", "ansible_become_pass": "s3cret-pw"}
    b = resolve_become(v, become=False, become_user="app", password="from-cli")
    assert (b.user, b.password) == ("db", "s3cret-pw")
    assert "s3cret-pw" not in repr(b)
    assert resolve_become({"ansible_become": "no"}, become=True) is None
    assert resolve_become({}, become=True, password="from-cli").password == "from-cli"


@pytest.mark.parametrize("become, problem", [
    (Become(method="doas"), "become_method 'doas' is not supported"),
    (Become(user="a b"), "not a user name"),
    (Become(flags="-s"), "become_flags '-s' is not supported for sudo"),
    (Become(method="su", flags="-c x"), "not supported for su"),
    (Become(flags="-H -E"), None),
    (Become(method="su", flags="-l"), None),
])
def test_become_problems_are_named(become, problem):
    found = become.problem()
    assert (found is None) if problem is None else (problem in found)


def test_sudo_and_su_command_lines():
    sudo = become_mod.command(Become(user="app", password="pw12"), "echo hi", prompt="P:")
    assert sudo == "sudo -H -S -p P: -u app -- sh -c 'echo hi'"
    assert "pw12" not in sudo
    assert become_mod.command(Become(), "x", prompt="P:") == "sudo -H -n -u root -- sh -c x"
    assert become_mod.command(Become(method="su", flags="-l"), "echo hi", prompt="P:") == \
        "su -l root -c 'sh -c '\"'\"'echo hi'\"'\"''"


@pytest.mark.parametrize("said, rc, sent, expected", [
    ("sudo: a password is required", 1, False, "needs a password"),
    ("nosudo is not in the sudoers file.", 1, True, "may not use sudo"),
    ("Sorry, user bob is not allowed to execute '/bin/sh -c x' as root on h.", 1, True, "may not use sudo"),
    ("Sorry, try again.\nsudo: 1 incorrect password attempt", 1, True, "rejected the become password"),
    ("su: Authentication failure", 1, True, "rejected the become password"),
    ("sudo: unknown user app", 1, False, "does not exist"),
    ("sh: 1: sudo: not found", 127, False, "not installed"),
    ("something else", 2, False, "failed (exit 2)"),
])
def test_refusals_become_clear_errors(said, rc, sent, expected):
    error = become_mod.diagnose(said, rc, Become(method="su" if said.startswith("su") else "sudo"),
                                host="h1", login_user="bob", password_sent=sent)
    assert isinstance(error, BecomeError)
    assert expected in str(error) and "fix:" in str(error)
    if expected == "needs a password":
        assert "ansible_become_password" in str(error) and "--ask-become-pass" in str(error)


def test_tty_refusals_are_recognised():
    assert become_mod.needs_tty("sudo: sorry, you must have a tty to run sudo")
    assert become_mod.needs_tty("su: must be run from a terminal")
    assert not become_mod.needs_tty("sudo: a password is required")


def test_local_become_to_self_needs_no_sudo():
    t = LocalTransport("h")
    me = t.login_user()
    r = t.run("id -un", become=Become(user=me))
    assert r.stdout.strip() == me and t.command_log[-1].user is None


# -- ssh args and ssh_config ------------------------------------------------------------
@pytest.mark.parametrize("args, expected", [
    ("-o ProxyJump=bastion", [("proxyjump", "bastion")]),
    ("-J admin@jump:2222,jump2", [("proxyjump", "admin@jump:2222,jump2")]),
    ('-o ProxyCommand="ssh -W %h:%p -q bastion"', [("proxycommand", "ssh -W %h:%p -q bastion")]),
    ("-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
     [("stricthostkeychecking", "no"), ("userknownhostsfile", "/dev/null")]),
    ("-C -o ControlMaster=auto -o ControlPersist=60s",
     [("compression", "yes"), ("controlmaster", "auto"), ("controlpersist", "60s")]),
    ("-oPort=2200 -i ~/.ssh/k -q", [("port", "2200"), ("identityfile", "~/.ssh/k")]),
])
def test_ssh_args_are_read(args, expected):
    options, files = sshconfig.parse_ssh_args(args, "ansible_ssh_common_args")
    assert options == expected and files == []


@pytest.mark.parametrize("args, says", [
    ("-o ForwardAgent=yes", "ForwardAgent=yes is not supported"),
    ("-A", "-A is not supported"),
    ("-o KexAlgorithms=+diffie-hellman-group1-sha1", "-o KexAlgorithms is not supported"),
    ("-L 8080:localhost:80", "-L is not supported"),
    ("bastion", "unexpected word"),
    ("-o", "needs a value"),
    ("-o 'ProxyCommand=ssh -W", "cannot split"),
])
def test_unsupported_ssh_args_are_refused(args, says):
    with pytest.raises(sshconfig.ConfigProblem) as info:
        sshconfig.parse_ssh_args(args, "ansible_ssh_extra_args")
    assert says in str(info.value) and info.value.field == "ansible_ssh_extra_args"


@pytest.mark.parametrize("text, hops", [
    ("bastion", [sshconfig.Hop("bastion")]),
    ("admin@10.0.0.1:2222,ssh://ops@b2", [sshconfig.Hop("10.0.0.1", "admin", 2222), sshconfig.Hop("b2", "ops")]),
    ("[fd00::1]:22", [sshconfig.Hop("fd00::1", None, 22)]),
    ("none", []),
])
def test_proxyjump_values(text, hops):
    assert sshconfig.parse_hops(text) == hops


def test_settings_precedence_and_ssh_config(tmp_path):
    config = tmp_path / "config"
    extra = tmp_path / "more.conf"
    extra.write_text("Host *.internal\n  Port 2022\n")
    config.write_text(textwrap.dedent(f"""\
        Include {extra}
        Host web1
          HostName 10.1.1.1
          User deploy
          IdentityFile {tmp_path}/id_web
          ProxyJump ops@bastion:2200
        Host bastion
          HostName 192.0.2.7
          User jumper
          IdentityFile {tmp_path}/id_bastion
        Host *
          UserKnownHostsFile {tmp_path}/kh {tmp_path}/kh2
        """))
    v = {"ansible_ssh_common_args": f"-F {config}"}
    s = sshconfig.settings("web1", v)
    assert (s.hostname, s.port, s.user) == ("10.1.1.1", 22, "deploy")
    assert s.identity_files == [f"{tmp_path}/id_web"]
    assert s.proxy_jump == [sshconfig.Hop("bastion", "ops", 2200)]
    assert s.known_hosts == f"{tmp_path}/kh" and f"{tmp_path}/kh2" in s.extra_known_hosts
    assert s.strict == "yes"
    hop = sshconfig.hop_settings(s.proxy_jump[0], s)
    assert (hop.hostname, hop.port, hop.user) == ("192.0.2.7", 2200, "ops")
    assert hop.identity_files == [f"{tmp_path}/id_bastion"] and hop.known_hosts == s.known_hosts
    # explicit inventory values beat ssh args, which beat ssh_config
    s = sshconfig.settings("web1", {**v, "ansible_user": "root", "ansible_port": 2201,
                                    "ansible_ssh_extra_args": "-o User=nobody -o StrictHostKeyChecking=accept-new"})
    assert (s.user, s.port, s.strict) == ("root", 2201, "accept-new")
    # an Include is read; the inventory's own known_hosts file wins over ssh_config's
    s = sshconfig.settings("db.internal", {**v, "gfsdeploy_known_hosts": str(tmp_path / "mine")})
    assert s.port == 2022 and s.known_hosts == str(tmp_path / "mine") and s.extra_known_hosts == []


def test_strict_checking_off_means_accept_new_never_ignore():
    s = sshconfig.settings("h", {"ansible_ssh_common_args": "-F none -o StrictHostKeyChecking=no"})
    assert s.strict == "accept-new"
    s = sshconfig.settings("h", {"ansible_ssh_common_args": "-F none", "ansible_host_key_checking": False})
    assert s.strict == "accept-new"


def test_bad_connection_settings_name_the_variable():
    from gfsdeploy.inventory import Host

    host = Host("h1", vars={"ansible_ssh_common_args": "-o ForwardAgent=yes"})
    with pytest.raises(TransportError) as info:
        make_transport(host)
    assert info.value.host == "h1" and info.value.field == "ansible_ssh_common_args"
    with pytest.raises(TransportError) as info:
        make_transport(Host("h2", vars={"ansible_connection": "docker"}))
    assert "docker" in str(info.value) and info.value.field == "ansible_connection"
    problems = sshconfig.check_variables({"ansible_ssh_extra_args": "-J a@b:99999", "ansible_connection": "winrm"})
    assert [p[0] for p in problems] == ["ansible_ssh_extra_args", "ansible_connection"]


def test_paramiko_is_imported_without_invoke_until_match_exec_needs_it(tmp_path):
    """invoke is ~40% of paramiko's import; only ssh_config's `Match exec` uses it."""
    code = textwrap.dedent(f"""
        import sys
        import gfsdeploy.transport.ssh
        assert "invoke" not in sys.modules, "invoke was imported with paramiko"
        from gfsdeploy.transport import sshconfig
        open({str(tmp_path / 'cfg')!r}, "w").write(
            'Match exec "test 1 = 1"\\n  HostName 192.0.2.10\\nMatch exec "false"\\n  Port 2200\\n')
        s = sshconfig.settings("web", {{"ansible_ssh_common_args": "-F {tmp_path / 'cfg'}"}})
        assert (s.hostname, s.port) == ("192.0.2.10", 22), (s.hostname, s.port)
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.stdout.strip() == "ok", proc.stderr


@pytest.mark.parametrize("mode", ["kill", "finish"])
@pytest.mark.parametrize("pty", [False, True])
def test_the_wrapper_leaves_no_trace_and_keeps_the_umask(tmp_path, monkeypatch, mode, pty):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))  # /tmp is shared with other runs on this machine
    t = LocalTransport("h")
    r = t._run_once("umask; echo out; echo err >&2; echo $TMPDIR", None, 30, mode, pty=pty)
    mask = os.umask(0o22)
    os.umask(mask)
    assert (r.rc, r.stdout, r.stderr) == (0, f"{mask:04o}\nout\n{scratch}\n", "err\n")
    assert os.listdir(scratch) == []


# -- the runner's per-task connection and escalation ---------------------------------------------
@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/usr/bin/sudo"), reason="needs root and sudo")
def test_each_task_runs_as_its_become_user(tmp_path):
    """`become`/`become_user` per task over one connection (`connection: local` here):
    root may sudo to nobody without a password."""
    inv = tmp_path / "inv.yaml"
    inv.write_text(textwrap.dedent(f"""\
        all:
          vars: {{ansible_connection: local, gfsdeploy_lock_dir: "{tmp_path}/lock"}}
          hosts: {{a: {{}}}}
        """))
    pb = tmp_path / "pb.yaml"
    pb.write_text(textwrap.dedent(f"""\
        - hosts: a
          tasks:
            - name: as nobody
              command: id -un
              become: true
              become_user: nobody
              register: as_nobody
            - name: as the login user
              command: id -un
              register: as_me
            - name: record
              copy: {{dest: "{tmp_path}/who", content: "{{{{ as_nobody.stdout }}}} {{{{ as_me.stdout }}}}\\n"}}
        """))
    proc = subprocess.run([sys.executable, "-m", "gfsdeploy", "apply", str(inv), "-p", str(pb), "--json"],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "who").read_text() == "nobody root\n"


def test_connections_are_shared_per_host_user_and_type():
    from gfsdeploy.inventory import Host
    from gfsdeploy.transport import Connections

    made = []

    def factory(host, **kw):
        made.append((host.name, kw.get("remote_user"), kw.get("connection")))
        return LocalTransport(host.name)

    conns = Connections(factory=factory)
    h = Host("n1", vars={"ansible_host": "192.0.2.1"})
    a = conns.get(h)
    assert conns.get(h) is a
    assert conns.get(h, remote_user="deploy") is not a            # another login: another connection
    assert conns.get(h, remote_user="deploy") is conns.get(h, remote_user="deploy")
    pinned = Host("n2", vars={"ansible_user": "admin"})
    assert conns.get(pinned, remote_user="deploy") is conns.get(pinned)  # ansible_user beats remote_user
    assert conns.get(h, connection="local") is not a
    assert conns.localhost() is conns.localhost()
    assert len(made) == 4
    conns.close()


def test_two_threads_asking_for_one_host_at_once_share_one_connection():
    """The transport is made outside the pool's lock (every host's first step asks at
    once): of two made at the same time, the first kept is every caller's, the other closed."""
    import threading

    from gfsdeploy.inventory import Host
    from gfsdeploy.transport import Connections

    made, closed, both_in = [], [], threading.Barrier(2)

    class Counted(LocalTransport):
        def close(self):
            closed.append(self)
            super().close()

    def factory(host, **kw):
        t = Counted(host.name)
        made.append(t)
        both_in.wait(5)  # (both threads are making one before either keeps it)
        return t

    conns = Connections(factory=factory)
    h = Host("n1")
    got = []
    threads = [threading.Thread(target=lambda: got.append(conns.get(h))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(made) == 2 and got[0] is got[1] and conns.all() == [got[0]]
    assert closed == [t for t in made if t is not got[0]]


def test_an_encrypted_key_opens_with_its_passphrase(sshd, tmp_path):
    """ansible_ssh_private_key_passphrase (kept out of every output)."""
    from gfsdeploy.inventory import Host

    key = tmp_path / "enc"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "Key-pass-123", "-f", str(key)], check=True)
    with open(os.path.join(sshd.root, "authorized_keys"), "a") as f:
        f.write((tmp_path / "enc.pub").read_text())
    v = {"ansible_host": "127.0.0.1", "ansible_port": sshd.port, "ansible_user": "root",
         "ansible_ssh_private_key_file": str(key), "gfsdeploy_known_hosts": sshd.known_hosts}
    with pytest.raises(TransportError):
        make_transport(Host("h", vars=v)).connect()
    t = make_transport(Host("h", vars={**v, "ansible_ssh_private_key_passphrase": "Key-pass-123"}))
    assert t.run("echo in").stdout == "in\n"
    t.close()


def test_proxyjump_chain_is_shared_and_forwarding_refusal_is_named(sshd, tmp_path):
    """Through the local sshd to itself: two hosts behind one jump share its connection
    (two hops deep for one of them); with AllowTcpForwarding no the error names the jump
    host and the fix. The lab tests do the same across real nodes."""
    from gfsdeploy.inventory import Host
    from gfsdeploy.transport import ssh as ssh_mod

    jump = f"root@127.0.0.1:{sshd.port}"
    v = {"ansible_host": "127.0.0.1", "ansible_port": sshd.port, "ansible_user": "root",
         "ansible_ssh_private_key_file": sshd.client_key, "gfsdeploy_known_hosts": sshd.known_hosts}
    one = make_transport(Host("one", vars={**v, "ansible_ssh_common_args": f"-J {jump}"}))
    two = make_transport(Host("two", vars={**v, "ansible_ssh_common_args": f"-o ProxyJump={jump},{jump}"}))
    assert one.run("echo $SSH_CONNECTION").stdout.split()[0] == "127.0.0.1"
    assert two.run("echo via").stdout == "via\n"
    assert sorted(j.refs for j in ssh_mod._JUMPS.values()) == [1, 2]   # the first hop is shared
    one.close()
    two.close()
    assert not ssh_mod._JUMPS
    with open(sshd.config, "a") as f:
        f.write("AllowTcpForwarding no\n")
    sshd.stop()
    sshd.start()
    blocked = make_transport(Host("one", vars={**v, "ansible_ssh_common_args": f"-J {jump}"}))
    with pytest.raises(TransportError) as info:
        blocked.connect()
    text = str(info.value)
    assert "127.0.0.1 refuses to forward TCP connections for root" in text
    assert "AllowTcpForwarding" in text and "fix:" in text
    direct = make_transport(Host("one", vars=v))
    with pytest.raises(TransportError) as info:
        direct.forward("127.0.0.1", 9, purpose="the service's REST API")
    assert "the service's REST API needs an SSH tunnel to 127.0.0.1:9" in str(info.value)
    direct.close()


def test_at_most_max_open_connections_stay_open(sshd):
    """paramiko runs a thread per connection: Connections(max_open=N) keeps N open and
    reopens an evicted one on its host's next command."""
    from gfsdeploy.inventory import Host
    from gfsdeploy.transport import Connections

    v = {"ansible_host": "127.0.0.1", "ansible_port": sshd.port, "ansible_user": "root",
         "ansible_ssh_private_key_file": sshd.client_key, "gfsdeploy_known_hosts": sshd.known_hosts}
    conns = Connections(max_open=2)
    hosts = [Host(f"h{i}", vars=v) for i in range(4)]
    base_threads = threading.active_count()
    for host in hosts:
        assert conns.get(host).run(f"echo {host.name}").stdout == f"{host.name}\n"
        assert sum(t.is_open for t in conns.all()) <= 2
    assert threading.active_count() - base_threads <= 2
    first = conns.get(hosts[0])                       # evicted earlier: reopens
    assert first.run("echo again").stdout == "again\n" and first.round_trips == 2
    assert sum(t.is_open for t in conns.all()) <= 2
    # a caller that kept its transports (the runner does) reopens them within the limit too
    kept = [conns.get(host) for host in hosts]
    for transport in kept + kept:
        transport.connect()                           # the runner connects before its first command
        assert sum(t.is_open for t in conns.all()) <= 2
        assert transport.run("echo kept").stdout == "kept\n"
        assert sum(t.is_open for t in conns.all()) <= 2
    assert threading.active_count() - base_threads <= 2
    conns.close()


def test_a_batch_whose_controller_is_killed_finishes_its_member_and_starts_no_other(tmp_path):
    """A batch runs as a `finish` script (a change is never cut half-way); once the
    controller is gone the wrapper makes $GFSDEPLOY_GONE, and the batch starts no further
    member: an interrupted run starts nothing new (docs/CONTRACT.md)."""
    from gfsdeploy import batch

    pidfile, log = tmp_path / "pid", tmp_path / "log"
    members = [batch.Member("a", 0, None, [], script=f"echo $$ > {pidfile}; sleep 2; echo one >> {log}"),
               batch.Member("b", 0, None, [], script=f"echo two >> {log}")]
    proc = _controller_running(batch.script(members, "tok"), pidfile, "finish")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while not log.exists():
        assert time.monotonic() < deadline, "the member in progress was cut short"
        time.sleep(0.1)
    time.sleep(1.5)  # the next member would have run by now
    assert log.read_text() == "one\n"
    # the same batch with its controller alive runs both
    log.unlink()
    result = LocalTransport("h").run(batch.script(members, "tok"))
    assert [r.rc for r in batch.parse(result, "tok", 2)] == [0, 0] and log.read_text() == "one\ntwo\n"
