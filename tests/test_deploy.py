"""Deployment artifacts: Dockerfile, .dockerignore, cloudbuild.yaml.

Docker cannot run here, so the Dockerfile is parsed and its build and start are replayed
on the host: the build context is what .dockerignore lets through, the builder stage's RUN
commands run against a fresh venv standing in for /opt/venv, the runtime stage's COPYs,
WORKDIR and ENV are laid out under a temporary root, and its CMD and HEALTHCHECK run
from there, with the checkout neither the working directory nor importable.
cloudbuild.yaml is checked for substitutions, one image reference everywhere, real
gcloud flags, an authenticated service, and a Job command the real CLI parser accepts.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
CLOUDBUILD = ROOT / "cloudbuild.yaml"
VENV_IN_IMAGE = "/opt/venv"


# ----------------------------------------------------------------------------- Dockerfile parser


@dataclass
class Instruction:
    cmd: str  # upper case: FROM, RUN, COPY, ...
    rest: str  # the text after the instruction and its --flags
    flags: dict[str, str]
    line: int

    @property
    def json(self) -> list[str] | None:
        """The exec (JSON array) form, or None for the shell form."""
        text = self.rest.strip()
        if not text.startswith("["):
            return None
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return None
        return value if isinstance(value, list) and all(isinstance(x, str) for x in value) else None


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, cmd: str) -> list[Instruction]:
        return [i for i in self.instructions if i.cmd == cmd]

    def last(self, cmd: str) -> Instruction | None:
        found = self.all(cmd)
        return found[-1] if found else None


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Join backslash continuations; drop comments (also inside continuations) and blanks."""
    out: list[tuple[int, str]] = []
    buf: list[str] = []
    start = 0
    for n, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not buf):
            continue
        if not buf:
            start = n
        if raw.rstrip().endswith("\\"):
            buf.append(raw.rstrip()[:-1])
            continue
        buf.append(raw)
        out.append((start, " ".join(part.strip() for part in buf if part.strip())))
        buf = []
    if buf:
        out.append((start, " ".join(part.strip() for part in buf if part.strip())))
    return out


def _split_flags(rest: str) -> tuple[dict[str, str], str]:
    flags: dict[str, str] = {}
    while True:
        m = re.match(r"--([a-z-]+)(?:=(\S*))?\s+", rest)
        if not m:
            return flags, rest
        flags[m.group(1)] = m.group(2) or ""
        rest = rest[m.end():]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARGs (before the first FROM) and the build stages."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line, logical in _logical_lines(text):
        word, _, rest = logical.partition(" ")
        cmd = word.upper()
        flags, rest = _split_flags(rest.strip() + " ")
        rest = rest.strip()
        if cmd == "FROM":
            parts = rest.split()
            base = expand(parts[0], global_args)
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base=base, name=name))
            continue
        ins = Instruction(cmd=cmd, rest=rest, flags=flags, line=line)
        if not stages:
            assert cmd == "ARG", f"line {line}: {cmd} before the first FROM"
            key, _, value = rest.partition("=")
            global_args[key] = value
            continue
        stages[-1].instructions.append(ins)
    return global_args, stages


def parse_kv(rest: str) -> dict[str, str]:
    """ENV / LABEL / ARG arguments: KEY=VALUE pairs with shell quoting (or legacy `ENV KEY VALUE`)."""
    tokens = shlex.split(rest, posix=True)
    if tokens and "=" not in tokens[0]:
        return {tokens[0]: " ".join(tokens[1:])}
    return dict(t.split("=", 1) if "=" in t else (t, "") for t in tokens)


def expand(value: str, env: dict[str, str]) -> str:
    """Docker's ${VAR} / $VAR substitution (no modifiers needed here)."""
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)",
                  lambda m: env.get(m.group(1) or m.group(2), ""), value)


def copy_sources(ins: Instruction) -> tuple[list[str], str]:
    args = ins.json or shlex.split(ins.rest)
    return args[:-1], args[-1]


def healthcheck_command(ins: Instruction) -> list[str]:
    """HEALTHCHECK [options] CMD ...: the argv Docker runs (shell form goes through /bin/sh -c)."""
    word, _, cmd = ins.rest.partition(" ")
    assert word.upper() == "CMD", f"HEALTHCHECK must be CMD ..., got {ins.rest!r}"
    exec_form = Instruction("CMD", cmd, {}, ins.line).json
    return exec_form if exec_form is not None else ["/bin/sh", "-c", cmd.strip()]


# ----------------------------------------------------------------------------- .dockerignore


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Docker/Go filepath.Match syntax plus `**` (any number of path segments)."""
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
            continue
        if pattern.startswith("**", i):
            out, i = out + ".*", i + 2
            continue
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            j = pattern.index("]", i + 1)
            body = pattern[i + 1:j]
            out += "[" + ("^" + body[1:] if body[:1] in ("!", "^") else body) + "]"
            i = j
        else:
            out += re.escape(c)
        i += 1
    return re.compile(out)


@dataclass
class DockerIgnore:
    rules: list[tuple[bool, str, re.Pattern[str]]]  # (negated, cleaned pattern, regex)

    @classmethod
    def load(cls, path: Path) -> DockerIgnore:
        rules = []
        for raw in path.read_text().splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            neg = line.startswith("!")
            pat = os.path.normpath(line[1:].strip() if neg else line).lstrip("/")
            rules.append((neg, pat, _glob_regex(pat)))
        return cls(rules)

    def excluded(self, rel: str) -> bool:
        """Last matching rule wins; a rule matches a path or any of its parent directories."""
        parts = rel.split("/")
        prefixes = ["/".join(parts[:k]) for k in range(1, len(parts) + 1)]
        result = False
        for neg, _, rx in self.rules:
            if any(rx.fullmatch(p) for p in prefixes):
                result = not neg
        return result

    def may_reinclude_under(self, rel_dir: str) -> bool:
        """Could a `!` rule re-include something below this excluded directory?"""
        for neg, pat, _ in self.rules:
            if not neg:
                continue
            literal = re.split(r"[*?\[]", pat, maxsplit=1)[0]
            if literal.startswith(rel_dir + "/") or (rel_dir + "/").startswith(literal) or not literal:
                return True
        return False

    def context_files(self, root: Path) -> list[str]:
        """The files `docker build` would send: relative paths under root."""
        kept: list[str] = []
        for dirpath, dirnames, filenames in os.walk(root):
            rel_dir = os.path.relpath(dirpath, root)
            rel_dir = "" if rel_dir == "." else rel_dir
            keep_dirs = []
            for d in dirnames:
                rel = f"{rel_dir}/{d}" if rel_dir else d
                if not (self.excluded(rel) and not self.may_reinclude_under(rel)):
                    keep_dirs.append(d)
            dirnames[:] = keep_dirs
            for f in filenames:
                rel = f"{rel_dir}/{f}" if rel_dir else f
                if not self.excluded(rel):
                    kept.append(rel)
        return sorted(kept)


# ----------------------------------------------------------------------------- fixtures: parsed files


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def stages(dockerfile) -> list[Stage]:
    return dockerfile[1]


@pytest.fixture(scope="module")
def ignore() -> DockerIgnore:
    return DockerIgnore.load(DOCKERIGNORE)


@pytest.fixture(scope="module")
def context_files(ignore) -> list[str]:
    return ignore.context_files(ROOT)


def _final_user(stage: Stage) -> str:
    ins = stage.last("USER")
    return ins.rest.split(":")[0].strip() if ins else "root"


# ----------------------------------------------------------------------------- Dockerfile: static checks


def test_parser_handles_continuations_and_json() -> None:
    _, st = parse_dockerfile(
        'ARG BASE=python:3.11-slim\nFROM ${BASE} AS b\n# c\nENV A=1 \\\n    # inside\n    B="x y"\n'
        'COPY --from=b /x /y\nCMD ["a", "b"]\nHEALTHCHECK --interval=5s CMD true\n'
    )
    assert st[0].base == "python:3.11-slim" and st[0].name == "b"
    assert parse_kv(st[0].last("ENV").rest) == {"A": "1", "B": "x y"}
    assert st[0].last("COPY").flags == {"from": "b"}
    assert st[0].last("CMD").json == ["a", "b"]
    assert healthcheck_command(st[0].last("HEALTHCHECK")) == ["/bin/sh", "-c", "true"]


def test_dockerignore_matching_semantics() -> None:
    di = DockerIgnore([])
    for line in ["*", "!src/", "**/__pycache__", "**/*.db", "!keep.db"]:
        neg = line.startswith("!")
        pat = os.path.normpath(line.lstrip("!")).lstrip("/")
        di.rules.append((neg, pat, _glob_regex(pat)))
    assert di.excluded("tests/test_x.py") and di.excluded(".git/HEAD")
    assert not di.excluded("src/a.py") and not di.excluded("src/pkg/b.py")
    assert di.excluded("src/pkg/__pycache__/b.cpython-311.pyc")
    assert di.excluded("src/x.db") and not di.excluded("keep.db")


def test_multi_stage_slim_same_base(stages: list[Stage]) -> None:
    assert len(stages) >= 2, "builder + runtime stages"
    for s in stages:
        assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?(@sha256:[0-9a-f]{64})?", s.base), s.base
    # The venv made in the builder points at the base's interpreter: it must be the same one.
    assert len({s.base for s in stages}) == 1
    names = [s.name for s in stages if s.name]
    for s in stages:
        for c in s.all("COPY"):
            if "from" in c.flags:
                assert c.flags["from"] in names, f"COPY --from={c.flags['from']} names no stage"


def test_runtime_stage_runs_as_non_root_and_serves_port(stages: list[Stage]) -> None:
    final = stages[-1]
    user = _final_user(final)
    assert user not in ("", "root", "0"), f"final USER is {user!r}"
    if user.isdigit():
        assert int(user) >= 1000
    cmd = final.last("CMD")
    assert cmd is not None and cmd.json is not None, "CMD must be the JSON (exec) form: signals reach proctor"
    assert cmd.json[:2] == ["proctor", "serve"]
    assert cmd.json[cmd.json.index("--host") + 1] == "0.0.0.0"
    assert "--port" not in cmd.json, "the port comes from $PORT (Cloud Run sets it)"
    assert "8080" in final.last("EXPOSE").rest.split()
    hc = final.last("HEALTHCHECK")
    assert hc is not None and "/health" in hc.rest
    assert not re.search(r"\b(curl|wget)\b", hc.rest), "slim images have neither curl nor wget"
    labels = parse_kv(" ".join(i.rest for i in final.all("LABEL")))
    for key in ("title", "description", "version", "revision", "licenses"):
        assert f"org.opencontainers.image.{key}" in labels


def test_runtime_env(stages: list[Stage]) -> None:
    final = stages[-1]
    env: dict[str, str] = {}
    for ins in final.all("ENV"):
        env.update(parse_kv(ins.rest))
    workdir = final.last("WORKDIR").rest
    assert env["PROCTOR_HOME"] == workdir == "/app"
    assert env["PROCTOR_DB"].startswith("/tmp/"), "Cloud Run's writable filesystem: keep the DB in /tmp"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1" and env["PYTHONUNBUFFERED"] == "1"
    assert env["PATH"].startswith(f"{VENV_IN_IMAGE}/bin:")


def test_production_dependencies_only(stages: list[Stage]) -> None:
    installs = [r.rest for s in stages for r in s.all("RUN") if "pip install" in r.rest]
    assert installs, "no pip install in the Dockerfile"
    for cmd in installs:
        assert "--no-cache-dir" in cmd, "keep pip's cache out of the layer"
        assert not re.search(r"\[[^\]]*(dev|llm)", cmd), f"extras in {cmd!r}"
        assert "litellm" not in cmd and " -e " not in f" {cmd} ", cmd
    # Nothing is installed in the runtime stage: it only receives the venv.
    assert not any("pip" in r.rest for r in stages[-1].all("RUN"))


def test_copy_sources_exist_and_survive_dockerignore(stages: list[Stage], ignore: DockerIgnore,
                                                     context_files: list[str]) -> None:
    in_context = set(context_files)
    for s in stages:
        for c in s.all("COPY") + s.all("ADD"):
            if "from" in c.flags:
                continue
            sources, _ = copy_sources(c)
            for src in sources:
                rel = src.rstrip("/")
                assert (ROOT / rel).exists(), f"line {c.line}: COPY {src}: not in the repo"
                if (ROOT / rel).is_dir():
                    files = [str(p.relative_to(ROOT)) for p in (ROOT / rel).rglob("*")
                             if p.is_file() and "__pycache__" not in p.parts]
                    assert files and all(f in in_context for f in files), f"COPY {src}: files ignored"
                else:
                    assert rel in in_context, f"line {c.line}: COPY {src} is excluded by .dockerignore"
    # pyproject names README.md as its readme: the package build fails without it.
    assert {"pyproject.toml", "README.md"} <= in_context


def test_context_excludes_what_does_not_run(context_files: list[str]) -> None:
    top = {f.split("/")[0] for f in context_files}
    assert top <= {"pyproject.toml", "README.md", "evaluator_agent", "mock_agents", "labelsets", "environments"}, top
    for f in context_files:
        assert "__pycache__" not in f and not f.endswith((".pyc", ".db", ".db-wal", ".db-shm")), f
    snapshots = [p for p in (ROOT / "environments" / "snapshots").iterdir() if p.is_file()]
    assert sum(f.startswith("environments/snapshots/") for f in context_files) == len(snapshots)


def test_final_stage_has_labelsets_and_environments(stages: list[Stage]) -> None:
    final = stages[-1]
    workdir = "/"
    copied: dict[str, str] = {}
    for ins in final.instructions:
        if ins.cmd == "WORKDIR":
            workdir = os.path.join(workdir, ins.rest)
        elif ins.cmd == "COPY" and "from" not in ins.flags:
            sources, dest = copy_sources(ins)
            for src in sources:
                copied[src.rstrip("/")] = os.path.normpath(os.path.join(workdir, dest))
    assert copied.get("labelsets") == "/app/labelsets"
    assert copied.get("environments") == "/app/environments"
    venv = [c for c in final.all("COPY") if "from" in c.flags]
    assert [copy_sources(c) for c in venv] == [([VENV_IN_IMAGE], VENV_IN_IMAGE)]


# ----------------------------------------------------------------------------- Dockerfile: replayed build and start


@dataclass
class Image:
    venv: Path
    root: Path  # stands for the runtime stage's "/"
    workdir: Path
    env: dict[str, str]
    cmd: list[str]
    healthcheck: list[str]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _host_env() -> dict[str, str]:
    """What a build on this host legitimately needs from outside: pip's configuration
    (mirrors, certificates, cache under HOME) and proxies. Nothing of the checkout."""
    keep = {"HOME", "LANG", "LC_ALL", "TMPDIR", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE",
            "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"}
    return {k: v for k, v in os.environ.items() if k in keep or k.startswith("PIP_")}


@pytest.fixture(scope="module")
def image(stages: list[Stage], context_files: list[str], tmp_path_factory: pytest.TempPathFactory) -> Image:
    tmp = tmp_path_factory.mktemp("image")
    # The build context: only what docker would send.
    ctx = tmp / "context"
    for rel in context_files:
        dst = ctx / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if rel.startswith(("labelsets/", "environments/")):
            os.symlink(ROOT / rel, dst)  # 45 MB of data: link, the content is the same
        else:
            shutil.copy2(ROOT / rel, dst)
    venv = tmp / "opt-venv"
    # `python` on the base image's PATH is the 3.11 interpreter; stand it in with ours.
    shim = tmp / "shim"
    shim.mkdir()
    base_python = getattr(sys, "_base_executable", None) or sys.executable
    os.symlink(base_python, shim / "python")
    base_path = f"{shim}:/usr/local/bin:/usr/bin:/bin"

    def to_host(value: str, root: Path) -> str:
        parts = []
        for part in value.split(":"):
            if part == VENV_IN_IMAGE or part.startswith(VENV_IN_IMAGE + "/"):
                part = str(venv) + part[len(VENV_IN_IMAGE):]
            elif part.startswith("/"):
                part = str(root) + part
            parts.append(part)
        return ":".join(parts)

    final: Image | None = None
    for index, stage in enumerate(stages):
        root = tmp / f"stage{index}"
        workdir = root
        workdir.mkdir(parents=True)
        args: dict[str, str] = {}
        env: dict[str, str] = {"PATH": base_path}
        for ins in stage.instructions:
            if ins.cmd == "ARG":
                args.update(parse_kv(ins.rest))
            elif ins.cmd == "ENV":
                for k, v in parse_kv(ins.rest).items():
                    env[k] = expand(to_host(v, root), {**args, **env})
            elif ins.cmd == "WORKDIR":
                workdir = Path(to_host(os.path.join("/", str(workdir.relative_to(root)), ins.rest), root))
                workdir.mkdir(parents=True, exist_ok=True)
            elif ins.cmd == "COPY":
                sources, dest = copy_sources(ins)
                if "from" in ins.flags:
                    # The venv is not relocatable: it stays where the builder made it.
                    assert sources == [VENV_IN_IMAGE] and dest == VENV_IN_IMAGE, ins.rest
                    continue
                target = workdir / dest if not dest.startswith("/") else Path(to_host(dest, root))
                for src in sources:
                    s = ctx / src.rstrip("/")
                    if s.is_dir():
                        # COPY DIR DEST copies DIR's contents into DEST, trailing slashes or not.
                        target.parent.mkdir(parents=True, exist_ok=True)
                        if s.name in ("labelsets", "environments") and not target.exists():
                            os.symlink(s.resolve(), target, target_is_directory=True)
                        else:
                            shutil.copytree(s, target, dirs_exist_ok=True)
                    else:
                        target.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(s, target / s.name)
            elif ins.cmd == "RUN":
                if index == len(stages) - 1:
                    # Runtime-stage RUNs only create the unprivileged user: not replayable here.
                    assert re.fullmatch(r"[\w\s&\\/.-]*(groupadd|useradd)[\w\s&\\/.:-]*", ins.rest), ins.rest
                    continue
                cmd = ins.rest.replace(VENV_IN_IMAGE, str(venv)).replace("--no-cache-dir", "")
                run_env = {**_host_env(), **env}
                proc = subprocess.run(["/bin/sh", "-c", cmd], cwd=workdir, env=run_env,
                                      capture_output=True, text=True, timeout=900)
                assert proc.returncode == 0, f"RUN {ins.rest}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        if index == len(stages) - 1:
            (root / "tmp").mkdir(exist_ok=True)
            final = Image(venv=venv, root=root, workdir=workdir, env=env,
                          cmd=stage.last("CMD").json, healthcheck=healthcheck_command(stage.last("HEALTHCHECK")))
    assert final is not None
    return final


def _run_env(image: Image, **extra: str) -> dict[str, str]:
    env = {**_host_env(), **image.env, **extra}
    for k in ("PYTHONPATH", "PROCTOR_LABELSETS", "PROCTOR_SNAPSHOTS"):
        env.pop(k, None)
    return env


@pytest.fixture(scope="module")
def served(image: Image):
    port = _free_port()
    log = image.root / "tmp" / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(image.cmd, cwd=image.workdir, env=_run_env(image, PORT=str(port)),
                                stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"`{' '.join(image.cmd)}` exited {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(base + "/health", timeout=2):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    pytest.fail(f"no /health within 90 s:\n{log.read_text()[-3000:]}")
                time.sleep(0.3)
        yield base, port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_installed_package_is_not_the_checkout(image: Image) -> None:
    proc = subprocess.run(
        ["python", "-c", "import evaluator_agent, mock_agents, sys; from evaluator_agent.core.labels import "
         "labelsets_dir, snapshots_dir; print(evaluator_agent.__file__); print(labelsets_dir()); "
         "print(snapshots_dir()); print(sys.prefix)"],
        cwd=image.workdir, env=_run_env(image), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    pkg, labelsets, snapshots, prefix = proc.stdout.split()
    assert Path(pkg).is_relative_to(image.venv) and not Path(pkg).is_relative_to(ROOT), pkg
    assert Path(prefix) == image.venv
    assert Path(labelsets) == image.workdir / "labelsets"
    assert Path(snapshots) == image.workdir / "environments" / "snapshots"


@pytest.mark.slow
def test_no_dependency_needs_a_compiler(image: Image) -> None:
    """python:3.11-slim has no compiler: every installed distribution must come as a
    wheel for this platform (a wheel built here from an sdist is tagged plain linux_*)."""
    site = next(image.venv.glob("lib/python3*/site-packages"))
    built_here = []
    for wheel in site.glob("*.dist-info/WHEEL"):
        tags = [line.split(":", 1)[1].strip() for line in wheel.read_text().splitlines() if line.startswith("Tag:")]
        if any(re.search(r"-linux_", t) for t in tags):
            built_here.append(wheel.parent.name)
    assert not built_here, f"compiled from source (needs gcc in the builder): {built_here}"
    dists = {p.name.split("-")[0].lower() for p in site.glob("*.dist-info")}
    assert "incident_proctor" in dists
    assert not {"pytest", "ruff", "litellm"} & dists, "dev/llm extras leaked into the image"


@pytest.mark.slow
def test_cmd_serves_health_and_agent_card(served) -> None:
    base, port = served
    with urllib.request.urlopen(base + "/health", timeout=5) as r:
        assert r.status == 200
        assert json.load(r)["status"] == "ok"
    with urllib.request.urlopen(base + "/.well-known/agent-card.json", timeout=5) as r:
        assert r.status == 200
        card = json.load(r)
    assert card.get("name") and card.get("skills")


@pytest.mark.slow
def test_healthcheck_command(image: Image, served) -> None:
    _, port = served
    ok = subprocess.run(image.healthcheck, cwd=image.workdir, env=_run_env(image, PORT=str(port)),
                        capture_output=True, text=True, timeout=30)
    assert ok.returncode == 0, ok.stderr
    down = subprocess.run(image.healthcheck, cwd=image.workdir, env=_run_env(image, PORT=str(_free_port())),
                          capture_output=True, text=True, timeout=30)
    assert down.returncode != 0, "the health check must fail when nothing listens"


@pytest.mark.slow
def test_labels_found_through_proctor_home(image: Image) -> None:
    env = _run_env(image)
    listed = subprocess.run(["proctor", "labels", "list", "smoke", "--json"], cwd=image.workdir, env=env,
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    ids = {x["id"] for x in json.loads(listed.stdout)}
    assert ids == {p.stem for p in (ROOT / "labelsets" / "smoke").glob("lbl_*.json")}
    # lint resolves every snapshot hash: proves environments/ is found too.
    lint = subprocess.run(["proctor", "labels", "lint", "smoke", "--json"], cwd=image.workdir, env=env,
                          capture_output=True, text=True, timeout=120)
    assert lint.returncode == 0, lint.stdout[-2000:] + lint.stderr[-2000:]


# ----------------------------------------------------------------------------- cloudbuild.yaml

CLOUD_SDK = "gcr.io/google.com/cloudsdktool/cloud-sdk:slim"
BUILTIN_SUBSTITUTIONS = {
    "PROJECT_ID", "BUILD_ID", "PROJECT_NUMBER", "LOCATION", "TRIGGER_NAME", "COMMIT_SHA", "REVISION_ID",
    "SHORT_SHA", "REPO_NAME", "REPO_FULL_NAME", "BRANCH_NAME", "TAG_NAME", "REF_NAME",
    "TRIGGER_BUILD_CONFIG_PATH", "SERVICE_ACCOUNT_EMAIL", "SERVICE_ACCOUNT",
}
# Flags of the GA `gcloud run deploy` (service) and `gcloud run jobs deploy` that a build
# might use (from the gcloud reference pages); a typo or a service-only flag on the job fails.
GCLOUD_COMMON = {"region", "project", "quiet", "async", "labels", "image", "command", "args", "cpu", "memory",
                 "service-account", "set-env-vars", "update-env-vars", "remove-env-vars", "clear-env-vars",
                 "env-vars-file", "set-secrets", "update-secrets", "remove-secrets", "clear-secrets",
                 "add-volume", "remove-volume", "clear-volumes", "add-volume-mount", "remove-volume-mount",
                 "clear-volume-mounts", "vpc-connector", "vpc-egress", "network", "subnet", "network-tags",
                 "set-cloudsql-instances", "binary-authorization", "key", "verbosity", "format"}
RUN_DEPLOY_FLAGS = GCLOUD_COMMON | {
    "platform", "port", "concurrency", "timeout", "max-instances", "min-instances", "execution-environment",
    "allow-unauthenticated", "no-allow-unauthenticated", "ingress", "cpu-boost", "no-cpu-boost",
    "cpu-throttling", "no-cpu-throttling", "session-affinity", "no-session-affinity", "tag", "no-traffic",
    "revision-suffix", "description", "use-http2", "no-use-http2", "startup-probe", "liveness-probe",
    "invoker-iam-check", "no-invoker-iam-check", "default-url", "no-default-url",
}
JOBS_DEPLOY_FLAGS = GCLOUD_COMMON | {"tasks", "parallelism", "task-timeout", "max-retries", "execute-now", "wait"}


@pytest.fixture(scope="module")
def cloudbuild() -> dict:
    yaml = pytest.importorskip("yaml", reason="PyYAML missing: add `pyyaml` to the dev extra")
    return yaml.safe_load(CLOUDBUILD.read_text())


def _strings(obj) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in _strings(v)]
    if isinstance(obj, list):
        return [s for v in obj for s in _strings(v)]
    return []


def _flags(args: list[str]) -> dict[str, str]:
    """--name=value flags of a gcloud/docker argv (value "" for booleans)."""
    out: dict[str, str] = {}
    for a in args:
        if a.startswith("--"):
            name, _, value = a[2:].partition("=")
            assert name not in out, f"--{name} given twice"
            out[name] = value
    return out


def _step(cb: dict, *prefix: str) -> dict:
    found = [s for s in cb["steps"] if s.get("entrypoint") == "gcloud" and s["args"][:len(prefix)] == list(prefix)]
    assert len(found) == 1, f"expected one `gcloud {' '.join(prefix)}` step, found {len(found)}"
    return found[0]


def _kv_list(value: str) -> dict[str, str]:
    return dict(x.split("=", 1) for x in value.split(","))


def test_substitutions_defined_and_used(cloudbuild: dict) -> None:
    subs = cloudbuild.get("substitutions", {})
    assert all(re.fullmatch(r"_[A-Z0-9_]+", k) for k in subs), subs
    text = "\n".join(_strings({k: v for k, v in cloudbuild.items() if k != "substitutions"}))
    text = text.replace("$$", "")
    used = {a or b for a, b in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", text)}
    user = {u for u in used if u.startswith("_")}
    assert user <= set(subs), f"undefined substitutions (Cloud Build rejects the build): {user - set(subs)}"
    assert set(subs) <= user, f"unused substitutions (Cloud Build warns): {set(subs) - user}"
    assert used - user <= BUILTIN_SUBSTITUTIONS, used - user - BUILTIN_SUBSTITUTIONS
    for key in ("_REGION", "_REPOSITORY", "_TAG", "_SERVICE", "_JOB", "_RESULTS_BUCKET", "_JOB_TASKS", "_DD_SECRET"):
        assert key in subs
    assert str(subs["_JOB_TASKS"]).isdigit()


def test_steps_ids_and_wait_for(cloudbuild: dict) -> None:
    ids = [s.get("id") for s in cloudbuild["steps"]]
    assert all(ids) and len(ids) == len(set(ids)), ids
    for s in cloudbuild["steps"]:
        for w in s.get("waitFor", []):
            assert w == "-" or w in ids, f"{s['id']} waits for unknown step {w}"
            if w != "-":
                assert ids.index(w) < ids.index(s["id"]), f"{s['id']} waits for a later step {w}"
        if s["name"].startswith("gcr.io/google.com/cloudsdktool/"):
            assert s["name"] == CLOUD_SDK
    assert cloudbuild["options"]["logging"] == "CLOUD_LOGGING_ONLY"


def test_one_image_reference_everywhere(cloudbuild: dict) -> None:
    builds = [s for s in cloudbuild["steps"] if s["name"] == "gcr.io/cloud-builders/docker" and s["args"][0] == "build"]
    pushes = [s for s in cloudbuild["steps"] if s["name"] == "gcr.io/cloud-builders/docker" and s["args"][0] == "push"]
    assert len(builds) == len(pushes) == 1
    build_args = builds[0]["args"]
    tags = [a.split("=", 1)[1] for a in build_args if a.startswith("--tag=")]
    tags += [build_args[i + 1] for i, a in enumerate(build_args) if a in ("-t", "--tag")]
    assert len(tags) == 1
    ref = tags[0]
    assert ref == "${_REGION}-docker.pkg.dev/$PROJECT_ID/${_REPOSITORY}/incident-proctor:${_TAG}"
    assert build_args[-1] == "." and (ROOT / "Dockerfile").is_file()
    assert pushes[0]["args"][1:] == [ref]
    assert cloudbuild["images"] == [ref]
    for step in (_step(cloudbuild, "run", "deploy"), _step(cloudbuild, "run", "jobs", "deploy")):
        assert _flags(step["args"])["image"] == ref, step["id"]
        assert pushes[0]["id"] in step.get("waitFor", []), f"{step['id']} must wait for the push"


def test_gcloud_flags_are_real(cloudbuild: dict) -> None:
    for prefix, allowed in ((("run", "deploy"), RUN_DEPLOY_FLAGS), (("run", "jobs", "deploy"), JOBS_DEPLOY_FLAGS)):
        step = _step(cloudbuild, *prefix)
        assert step["name"] == CLOUD_SDK
        flags = _flags(step["args"])
        unknown = set(flags) - allowed
        assert not unknown, f"gcloud {' '.join(prefix)}: unknown flags {sorted(unknown)}"
        assert "region" in flags
        positional = [a for a in step["args"][len(prefix):] if not a.startswith("-")]
        assert len(positional) == 1, f"one resource name, got {positional}"
        assert not ({"set-env-vars", "update-env-vars"} <= set(flags)), "mutually exclusive"
        assert not ({"set-secrets", "update-secrets"} <= set(flags)), "mutually exclusive"


def _volumes(flags: dict[str, str]) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    vol = _kv_list(flags["add-volume"])
    mount = _kv_list(flags["add-volume-mount"])
    return {vol["name"]: vol}, {mount["volume"]: mount["mount-path"]}


def test_service_deploy(cloudbuild: dict, stages: list[Stage]) -> None:
    step = _step(cloudbuild, "run", "deploy")
    args, flags = step["args"], _flags(step["args"])
    assert "--no-allow-unauthenticated" in args and "--allow-unauthenticated" not in args
    assert flags["port"] in stages[-1].last("EXPOSE").rest.split()
    assert flags["max-instances"] == "1", "the service's SQLite lives in one instance"
    assert int(flags["timeout"]) == 3600 and int(flags["concurrency"]) >= 1
    assert flags["memory"] == "2Gi" and flags["cpu"] == "2"
    assert flags["execution-environment"] == "gen2", "Cloud Storage volume mounts need gen2"
    vols, mounts = _volumes(flags)
    assert vols["results"]["type"] == "cloud-storage" and vols["results"]["bucket"] == "${_RESULTS_BUCKET}"
    env = _kv_list(flags["set-env-vars"])
    assert env["PROCTOR_CHECKPOINT_DIR"].startswith(mounts["results"])
    assert _kv_list(flags["set-secrets"]) == {"DD_API_KEY": "${_DD_SECRET}:latest"}


def test_job_deploy(cloudbuild: dict) -> None:
    step = _step(cloudbuild, "run", "jobs", "deploy")
    flags = _flags(step["args"])
    assert flags["tasks"] == "${_JOB_TASKS}" and flags["parallelism"]
    assert flags["max-retries"] == "3" and re.fullmatch(r"\d+[smh]?", flags["task-timeout"])
    vols, mounts = _volumes(flags)
    assert vols["results"]["type"] == "cloud-storage" and vols["results"]["bucket"] == "${_RESULTS_BUCKET}"
    env = _kv_list(flags.get("set-env-vars") or flags["update-env-vars"])
    assert env["PROCTOR_CHECKPOINT_DIR"] == "/results/runs" and env["PROCTOR_CHECKPOINT_DIR"].startswith(mounts["results"])
    assert _kv_list(flags["set-secrets"]) == {"DD_API_KEY": "${_DD_SECRET}:latest"}


def _parse_proctor(parser, argv: list[str]):
    try:
        return parser.parse_args(argv)
    except SystemExit as e:  # argparse printed the reason to stderr
        pytest.fail(f"`proctor {' '.join(argv)}` is rejected by the CLI parser (exit {e.code})")


def _job_argv(cloudbuild: dict) -> list[str]:
    flags = _flags(_step(cloudbuild, "run", "jobs", "deploy")["args"])
    return flags["command"].split(",") + flags["args"].split(",")


def test_job_command_is_a_valid_proctor_run(cloudbuild: dict) -> None:
    from evaluator_agent.cli.main import build_parser

    argv = _job_argv(cloudbuild)
    assert argv[0] == "proctor"  # the console script of pyproject.toml
    a = _parse_proctor(build_parser(), argv[1:])
    assert a.cmd == "run" and a.labelset == "core"


def test_job_relies_on_cloud_run_task_env(cloudbuild: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """The job passes no --target/--shard/--run-id: `proctor run` must take them from the
    environment (PROCTOR_TARGET, CLOUD_RUN_TASK_INDEX/COUNT, CLOUD_RUN_EXECUTION)."""
    from evaluator_agent.cli.main import build_parser

    argv = _job_argv(cloudbuild)
    assert not {"--target", "--shard", "--run-id", "--checkpoint-dir"} & set(argv)
    monkeypatch.setenv("PROCTOR_TARGET", "https://agent.example/.well-known/agent-card.json")
    monkeypatch.setenv("CLOUD_RUN_TASK_INDEX", "3")
    monkeypatch.setenv("CLOUD_RUN_TASK_COUNT", "10")
    monkeypatch.setenv("CLOUD_RUN_EXECUTION", "incident-proctor-weekly-abc12")
    flags = _flags(_step(cloudbuild, "run", "jobs", "deploy")["args"])
    job_env = _kv_list(flags.get("set-env-vars") or flags["update-env-vars"])
    for k, v in job_env.items():
        monkeypatch.setenv(k, v)
    parser = build_parser()
    run = next(a for a in parser._subparsers._group_actions[0].choices.values() if a.prog.endswith(" run"))
    options = {o for action in run._actions for o in action.option_strings}
    missing = {"--shard", "--checkpoint-dir"} - options
    assert not missing, f"`proctor run` lacks {sorted(missing)} (the lead's sharding change)"
    a = _parse_proctor(parser, argv[1:])
    assert a.target == "https://agent.example/.well-known/agent-card.json", "--target must default to $PROCTOR_TARGET"
    assert a.run_id == "incident-proctor-weekly-abc12", "--run-id must default to $CLOUD_RUN_EXECUTION"
    assert a.checkpoint_dir == job_env["PROCTOR_CHECKPOINT_DIR"], "--checkpoint-dir must default to $PROCTOR_CHECKPOINT_DIR"
    assert a.shard is None, "the job passes no --shard: CLOUD_RUN_TASK_INDEX/COUNT decide"
