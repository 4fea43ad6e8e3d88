"""A real Asterisk (../shared/asterisk, or CALLCENTER_TEST_ASTERISK) running the project's own
config, written by `callcenter asterisk write-config` from the test's settings, plus what a test
PBX needs and a deployment does not: Local-channel callers that press keys ([dxe-test-caller]),
Local-channel agents ([dxe-test-agents]), silent prompts, its own asterisk.conf with absolute paths.

Used by tests/pbx/ and bench/live_pbx.py. Everything binds to 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import wave
from pathlib import Path

from callcenter.asterisk_config import write_config
from config.settings import Settings

SHARED = Path(__file__).resolve().parents[2].parent / "shared"  # beside the checkout
if not SHARED.exists():
    SHARED = Path(os.environ.get("CALLCENTER_SHARED_DIR", "../shared")).resolve()


def asterisk_home() -> Path | None:
    """The Asterisk tree to test against, or None (the live suite then skips, saying why)."""
    env = os.environ.get("CALLCENTER_TEST_ASTERISK")
    home = Path(env) if env else SHARED / "asterisk"
    return home if (home / "sbin" / "asterisk").exists() else None


def unusable_reason(home: Path | None) -> str | None:
    """Why the live suite cannot run here (None: it can). The binary is probed by booting it with
    an empty config: a build for another CPU (e.g. compiled with AVX-512 instructions, run on a CPU
    without them) dies at start with SIGILL, which `asterisk -V` alone does not reveal."""
    if home is None:
        return (
            "no Asterisk binary: set CALLCENTER_TEST_ASTERISK to an Asterisk tree "
            "(sbin/asterisk, lib/asterisk/modules) or put it in ../shared/asterisk"
        )
    import tempfile

    with tempfile.TemporaryDirectory(prefix="ast-probe-") as tmp:
        t = Path(tmp)
        make_tree(t, home)  # the same tree as a test's PBX: a missing dir is not what we probe
        (t / "etc" / "asterisk.conf").write_text(asterisk_conf(t, home), encoding="utf-8")
        (t / "etc" / "modules.conf").write_text("[modules]\nautoload = no\n")
        proc = subprocess.Popen(
            [str(home / "sbin" / "asterisk"), "-C", f"{t}/etc/asterisk.conf", "-f", "-n"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            rc = proc.wait(3)
        except subprocess.TimeoutExpired:  # still running: it boots on this machine
            proc.kill()
            proc.wait()
            return None
    if rc == -signal.SIGILL:
        return (
            f"{home}/sbin/asterisk dies with SIGILL on this CPU (built with instructions this "
            "CPU lacks, e.g. AVX-512): rebuild it here or run on a matching CPU"
        )
    return f"{home}/sbin/asterisk exited at start with code {rc}"


# Under a scratch root, one tree per PBX. astdatadir needs documentation/ (the Asterisk tree's XML
# docs, linked): without them core parts refuse their config types ("Cannot update type
# 'declined_message_types' in module 'stasis' because it has no existing documentation!") and
# Asterisk exits 1 at boot ("Stasis initialization failed"), which is what the probe, with no
# astdatadir at all, hit. sounds/ holds the prompts; everything else is the test's own.
TREE = ("etc", "lib", "agi-bin", "spool/monitor", "run", "log/cdr-custom", "cache", "data/sounds")


def make_tree(root: Path, home: Path) -> Path:
    """Create root's directories (cdr-custom too: Asterisk appends to dxe.csv, never mkdirs it);
    returns the data dir."""
    for d in TREE:
        (root / d).mkdir(parents=True, exist_ok=True)
    data = root / "data"
    doc = data / "documentation"
    if not doc.exists():
        doc.symlink_to(home / "var" / "lib" / "asterisk" / "documentation")
    return data


def asterisk_conf(root: Path, home: Path) -> str:
    """asterisk.conf with every directory absolute: modules and sbin from the Asterisk tree, the
    rest under root (make_tree). Used by the probe and by LivePbx alike."""
    return (
        "[directories]\n"
        f"astetcdir => {root}/etc\n"
        f"astmoddir => {home}/lib/asterisk/modules\n"
        f"astdatadir => {root}/data\n"
        f"astvarlibdir => {root}/lib\n"
        f"astdbdir => {root}/lib\n"
        f"astkeydir => {root}/lib\n"
        f"astagidir => {root}/agi-bin\n"
        f"astspooldir => {root}/spool\n"
        f"astrundir => {root}/run\n"
        f"astlogdir => {root}/log\n"
        f"astcachedir => {root}/cache\n"
        f"astsbindir => {home}/sbin\n"
        "[options]\nnocolor = yes\nverbose = 0\nhideconnect = yes\n"
    )


def free_port() -> int:
    """A free loopback port: from CALLCENTER_TEST_PORT_BASE upwards when set, else the OS's."""
    base = os.environ.get("CALLCENTER_TEST_PORT_BASE")
    candidates = range(int(base), int(base) + 100) if base else [0]
    for p in candidates:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                continue
            port = s.getsockname()[1]
        if p == 0 or port not in _TAKEN:
            _TAKEN.add(port)
            return port
    raise RuntimeError("no free port")


_TAKEN: set[int] = set()

# what the shipped dialplan and TEST_DIALPLAN use, with the modules each depends on (autoload = no:
# nothing else loads); tests/ami/test_pbx_harness_config.py checks it against Asterisk's XML docs
MODULES = [
    "pbx_config",
    "app_queue",
    "app_voicemail",
    "app_mixmonitor",
    "app_playback",
    "app_senddtmf",
    "app_userevent",
    "app_stack",
    "app_dial",
    "app_chanspy",  # [dxe-spy]: supervisor listen / whisper / barge
    "app_exec",
    "app_verbose",
    "app_db",
    "app_cdr",
    "res_speech",  # res_agi depends on it
    "res_agi",
    "res_musiconhold",
    "res_timing_timerfd",
    "res_adsi",
    "res_smdi",
    "func_channel",
    "func_strings",
    "func_cdr",
    "func_db",
    "func_callerid",
    "func_timeout",
    "func_logic",
    "func_global",
    "func_hangupcause",
    "func_math",
    "res_cdrel_custom",  # Asterisk 22.10's cdr_custom is a wrapper over it
    "cdr_custom",
    "format_wav",
    "format_pcm",
    "format_sln",
    "codec_ulaw",
    "codec_alaw",
    "codec_a_mu",
    "codec_resample",
    "bridge_simple",
    "bridge_softmix",
    "bridge_holding",
    "bridge_builtin_features",
    "bridge_builtin_interval_features",
    "res_sorcery_config",
    "res_sorcery_memory",
    "res_sorcery_astdb",
    "func_devstate",
]

PROMPTS = [
    "welcome",
    "invalid",
    "no-input",
    "transfer",
    "to-operator",
    "goodbye",
    "closed",
    "busy",
    "recorded",
    "please-hold",
    "queue-enterprise",
    "queue-government",
    "queue-complaint",
    "queue-general",
]

TEST_DIALPLAN = """
; ---- test-only contexts (tests/pbx/harness.py), not part of a deployment ----
; The caller's phone: the ;1 half of Local/12345@dxe-inbound, run once the hotline answers.
[dxe-test-caller]
exten => s,1,NoOp(test caller keys=${DXE_KEYS} stay=${DXE_STAY})
 same => n,Wait(${IF($["${DXE_DELAY}" = ""]?1:${DXE_DELAY})})
 same => n,ExecIf($["${DXE_KEYS}" != ""]?SendDTMF(${DXE_KEYS},200))
 same => n,Wait(${IF($["${DXE_STAY}" = ""]?5:${DXE_STAY})})
 same => n,Hangup()

; Agents: queue members Local/80XX@dxe-test-agents/n. They answer after half a second and talk
; until the caller hangs up; 8009 rings forever (no agent ever answers: abandoned calls).
[dxe-test-agents]
exten => _80XX,1,NoOp(test agent ${EXTEN})
 same => n,GotoIf($["${EXTEN}" = "8009"]?noanswer)
 same => n,Wait(0.5)
 same => n,Answer()
 same => n,Wait(600)
 same => n,Hangup()
 same => n(noanswer),Wait(600)
 same => n,Hangup()
"""


class LivePbx:
    """One Asterisk process with its own scratch tree under `root`."""

    def __init__(self, root: Path, settings: Settings, home: Path) -> None:
        self.root = root
        self.settings = settings
        self.home = home
        self.server = settings.asterisk[0]
        self.etc = root / "etc"
        self.spool = root / "spool"
        self.logdir = root / "log"
        self.proc: subprocess.Popen | None = None
        self.conf = self.etc / "asterisk.conf"

    @property
    def cdr_dir(self) -> Path:
        return self.logdir / "cdr-custom"

    def write(self) -> None:
        """The project's files (write-config) + the test PBX's own."""
        data = make_tree(self.root, self.home)
        write_config(self.settings, self.etc)
        ext = self.etc / "extensions.conf"
        ext.write_text(ext.read_text(encoding="utf-8") + TEST_DIALPLAN, encoding="utf-8")
        q = self.etc / "queues.conf"  # short wrap-up so a few agents carry a test's calls
        q.write_text(
            q.read_text(encoding="utf-8").replace("wrapuptime = 15", "wrapuptime = 1"),
            encoding="utf-8",
        )
        for lang in ("zh", "en"):
            sounds = data / "sounds" / lang / "dxe"
            sounds.mkdir(parents=True, exist_ok=True)
            for name in PROMPTS:
                _silence(sounds / f"{name}.wav", 0.2)
        self.conf.write_text(asterisk_conf(self.root, self.home), encoding="utf-8")
        (self.etc / "modules.conf").write_text(
            "[modules]\nautoload = no\n" + "".join(f"load => {m}.so\n" for m in MODULES),
            encoding="utf-8",
        )
        (self.etc / "logger.conf").write_text(
            "[general]\n[logfiles]\nmessages.log => notice,warning,error\n", encoding="utf-8"
        )
        (self.etc / "musiconhold.conf").write_text(
            f"[default]\nmode = files\ndirectory = {data}/sounds/zh/dxe\n"
        )

    # ----- process --------------------------------------------------------------------------
    def _bin(self) -> str:
        return str(self.home / "sbin" / "asterisk")

    def rx(self, command: str, timeout: float = 10) -> str:
        out = subprocess.run(
            [self._bin(), "-C", str(self.conf), "-rx", command],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return out.stdout

    def start(self, timeout: float = 30) -> None:
        if not self.conf.exists():
            self.write()
        log = open(self.logdir / "console.log", "ab")  # noqa: SIM115 - lives as long as the PBX
        self.proc = subprocess.Popen(
            [self._bin(), "-C", str(self.conf), "-f", "-n"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"asterisk exited: {self.tail()}")
            try:
                r = subprocess.run(
                    [self._bin(), "-C", str(self.conf), "-rx", "core waitfullybooted"],
                    capture_output=True,
                    text=True,
                    timeout=5,
                )
                if "fully booted" in r.stdout.lower():
                    return
            except subprocess.TimeoutExpired:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"asterisk did not boot in {timeout}s: {self.tail()}")

    def tail(self, n: int = 4000) -> str:
        out = ""
        for f in ("console.log", "messages.log"):
            p = self.logdir / f
            if p.exists():
                out += f"--- {f}\n" + p.read_text(errors="replace")[-n:]
        return out

    def messages(self) -> str:
        p = self.logdir / "messages.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            self.rx("core stop now", timeout=5)
            self.proc.wait(10)
        except (subprocess.TimeoutExpired, OSError):
            self.kill9()


def _silence(path: Path, seconds: float) -> None:
    if path.exists():
        return
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * int(8000 * seconds))


def rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


# ----- driving calls over AMI (the bridge's own connection: Originate, QueueAdd) ----------------
AGENTS = {"8001": "张敏", "8002": "李强", "8003": "王芳"}
QUEUE_AGENTS = {
    "dxe-enterprise": ["8001", "8002"],
    "dxe-government": ["8002", "8003"],
    "dxe-complaint": ["8009"],  # rings forever: every caller here abandons
    "dxe-general": ["8001", "8002", "8003"],
}


def agent_interface(ext: str) -> str:
    return f"Local/{ext}@dxe-test-agents/n"


async def add_agents(conn, queue_agents: dict[str, list[str]] = QUEUE_AGENTS) -> None:
    for queue, exts in queue_agents.items():
        for ext in exts:
            await conn.send(
                {
                    "Action": "QueueAdd",
                    "Queue": queue,
                    "Interface": agent_interface(ext),
                    "MemberName": AGENTS.get(ext, f"坐席{ext}"),
                }
            )


async def originate(conn, phone: str, keys: str, stay: float, delay: float = 1.0) -> None:
    """A caller dialling 12345 who presses `keys` after `delay` s and hangs up after `stay` s."""
    await conn.send(
        {
            "Action": "Originate",
            "Channel": "Local/12345@dxe-inbound",
            "Context": "dxe-test-caller",
            "Exten": "s",
            "Priority": "1",
            "CallerID": f'"测试" <{phone}>',
            "Async": "true",
            "Timeout": "30000",
            "Variable": f"DXE_KEYS={keys},DXE_STAY={stay},DXE_DELAY={delay}",
        }
    )
