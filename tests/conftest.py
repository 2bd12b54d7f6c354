"""Shared fixtures: the Ollama double, and stand-in readers for deterministic memory figures."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from ollama_double import DoubleConfig, OllamaDouble


@pytest.fixture
def double_factory() -> Iterator[Callable[..., OllamaDouble]]:
    """Start doubles with the given DoubleConfig fields; all are stopped after the test."""
    started: list[OllamaDouble] = []

    def start(**config: object) -> OllamaDouble:
        double = OllamaDouble(DoubleConfig(**config)).start()  # type: ignore[arg-type]
        started.append(double)
        return double

    yield start
    for double in started:
        try:
            double.stop()
        except OSError:
            pass


@pytest.fixture
def double(double_factory: Callable[..., OllamaDouble]) -> OllamaDouble:
    """A well-behaved double with llama3.3 on it."""
    return double_factory()


@pytest.fixture
def closed_port_url() -> str:
    """The URL of a port on 127.0.0.1 where nothing listens (connection refused)."""
    double = OllamaDouble()
    url = double.url
    double.stop()
    return url


@pytest.fixture(autouse=True)
def private_history(tmp_path_factory, monkeypatch) -> None:
    """Every test (and every llmtop it starts) keeps its history in a folder of its own."""
    monkeypatch.setenv("LLMTOP_DATA_DIR", str(tmp_path_factory.mktemp("llmtop-data")))


# -- real Ollama (tests/ollama_build.py, tests/real_ollama.py) ------------------------------------------
OLLAMA_VERSIONS = ("article", "last Go engine", "newest")  # 0.5.11, 0.24.0, the newest the proxy serves


@pytest.fixture(scope="session")
def ollama_builds(request):
    """The three real Ollamas, built once per machine (the first session pays); each step and its
    time written to the terminal past pytest's capture, so CI's log shows them."""
    import sys

    from ollama_build import _say_to, all_builds, must_build_here, not_built

    plugins = request.config.pluginmanager
    reporter, capture = plugins.getplugin("terminalreporter"), plugins.getplugin("capturemanager")
    stream = _TerminalLines(reporter, capture) if reporter is not None and capture is not None else sys.stderr
    builds = all_builds(_say_to(stream))
    problem = not_built(builds)
    if problem and must_build_here():
        pytest.fail(f"{problem}\n(on CI, with Go installed, the real-Ollama tests must run)", pytrace=False)
    return dict(zip(OLLAMA_VERSIONS, builds, strict=True))


RAN_AGAINST: dict[str, set[str]] = {}  # each real Ollama version started by a test: the tests that started it


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """The run's end names the real Ollama versions its tests ran against (none, where none did)."""
    if not RAN_AGAINST:
        return

    def by_version(item: tuple[str, set[str]]) -> list[int]:
        return [int(part) for part in item[0].split()[0].split(".") if part.isdigit()]

    said = ", ".join(
        f"{version} ({len(tests)} tests)" for version, tests in sorted(RAN_AGAINST.items(), key=by_version)
    )
    terminalreporter.write_sep("-", f"real Ollama the tests ran against: {said}")


class _TerminalLines:
    """A `write(text)` that puts each line on pytest's terminal (not captured)."""

    def __init__(self, reporter, capture) -> None:
        self.reporter, self.capture = reporter, capture

    def write(self, text: str) -> None:
        with self.capture.global_and_fixture_disabled():
            self.reporter.ensure_newline()
            for line in text.splitlines():
                self.reporter.write_line(line)


@pytest.fixture(scope="session")
def ollama_models(ollama_builds, tmp_path_factory):
    """Per version, an OLLAMA_MODELS folder with the tests' models imported (`ollama create`)."""
    from real_ollama import (
        GEMMA,
        LONG_CONTEXT_LLAMA,
        LONG_LLAMA,
        MOE_LLAMA,
        NUM_PREDICT,
        RANDOM_LLAMA,
        RealOllama,
        knows_gemma3,
        model_files,
        runs_llama_server,
    )

    prepared = {}

    def models_of(kind: str):
        build = ollama_builds[kind]
        if build.binary is None:
            pytest.skip(f"Ollama {build.version} was not built here: {build.why_not}")
        if kind not in prepared:
            folder = tmp_path_factory.mktemp(f"ollama-{build.version}-models")
            server = RealOllama(build, folder).start()
            try:
                for name, path in model_files().items():
                    if name == GEMMA and not knows_gemma3(build.version):
                        continue
                    if name in (MOE_LLAMA, LONG_CONTEXT_LLAMA) and not runs_llama_server(build.version):
                        continue
                    server.create(name, path, {"num_predict": NUM_PREDICT})
                server.create(LONG_LLAMA, model_files()[RANDOM_LLAMA], {"num_predict": 4096})
            finally:
                server.stop()
            prepared[kind] = server.models
        return prepared[kind]

    return models_of


SOFTWARE_GPU = "software GPU"  # the newest Ollama, its llama-server built with Vulkan, on Mesa's lavapipe


@pytest.fixture(scope="session")
def software_gpu_build(ollama_builds, request):
    """The newest Ollama beside a Vulkan llama-server (tests/ollama_build.py), built once per machine.
    A machine without Mesa's software Vulkan driver skips its tests in one line; CI fails instead."""
    from llama_server_build import vulkan_missing
    from ollama_build import _say_to, on_ci, with_software_gpu

    problem = vulkan_missing()
    build = None
    if problem is None:
        plugins = request.config.pluginmanager
        reporter, capture = plugins.getplugin("terminalreporter"), plugins.getplugin("capturemanager")
        stream = _TerminalLines(reporter, capture) if reporter is not None and capture is not None else None
        build = with_software_gpu(ollama_builds["newest"], _say_to(stream))
        problem = build.why_not if build.binary is None else None
    if problem:
        if on_ci():
            pytest.fail(f"the software GPU could not be set up on CI: {problem}", pytrace=False)
        pytest.skip(f"no software GPU here: {problem}")
    return build


@pytest.fixture
def real_ollama(ollama_builds, ollama_models, tmp_path_factory, request):
    """Start a real `ollama serve` of a version (`real_ollama("newest")`; `real_ollama(SOFTWARE_GPU)`:
    the newest on Mesa's software Vulkan GPU), its models imported, a log of its own; every one started
    is stopped after the test."""
    from ollama_build import SOFTWARE_GPU_ENV
    from real_ollama import RealOllama

    started = []

    def start(kind: str, start: bool = True, **env: str) -> RealOllama:
        """`start=False`: its folders and environment only (for `llmtop --serve` to start it)."""
        if kind == SOFTWARE_GPU:
            build, models = request.getfixturevalue("software_gpu_build"), ollama_models("newest")
            env = {**SOFTWARE_GPU_ENV, **env}
        else:
            build, models = ollama_builds[kind], ollama_models(kind)
        server = RealOllama(build, tmp_path_factory.mktemp("ollama"), extra_env=dict(env))
        server.folder.joinpath("models").symlink_to(models)
        server.folder.joinpath("home").mkdir()
        started.append(server)
        name = f"{build.version} on the software GPU" if kind == SOFTWARE_GPU else build.version
        RAN_AGAINST.setdefault(name, set()).add(request.node.nodeid)
        return server.start() if start else server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def engine_ready() -> None:
    """The real engine (llama-cpp-python, the `engine` extra) is installed: on Linux its absence fails
    the tests that need it, with what to install."""
    from engine_double import engine_missing

    problem = engine_missing()
    if problem:
        pytest.fail(f"the real engine is missing: {problem}", pytrace=False)
