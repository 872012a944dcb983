"""The SAM effect against a server someone else runs (Engine: Server): the real engine service in
its own process on 127.0.0.1 with a token (tiny random weights: plumbing only), driven through the
effect as a user drives it, with the host loop idling while holding the GIL as Slicer's does.
What a department server brings: a token that can be wrong, a server that restarts, stops, or
sits behind a proxy that closes idle connections; and Slicer never starts an engine of its own."""

from __future__ import annotations

import re
import signal
import socket

import numpy as np
import pytest
import slicer
from idle_closing_proxy import IdleClosingProxy
from tiny_server import TinyServer

pytestmark = pytest.mark.slicer

TOKEN = "department-token"
ERROR_STYLE = "c0392b"  # the colour of an error in the effect's status (EffectOptions.status)


@pytest.fixture
def server(samModule, editor):
    pytest.importorskip("torch")
    pytest.importorskip("segment_anything")
    server = TinyServer(TOKEN, lambda condition, timeout, what: editor.host.runUntil(condition, timeout, what))
    server.start()
    yield server
    slicer.util.getModuleLogic("SAMSegment").shutdown()
    server.close()


@pytest.fixture
def noLocalEngine(samModule, monkeypatch):
    """With a server chosen, Slicer never starts an engine process of its own."""

    def refuse():
        raise AssertionError("a local engine process was started although a server is chosen")

    monkeypatch.setattr(samModule.pythonModule, "engineProcess", refuse)


def chooseServer(url: str, token: str) -> None:
    """The user's saved choice (Slicer's settings), as the effect's options store it."""
    from SAMSegmentEffect.settings import SERVER_ENGINE, EngineChoice, saveEngineChoice

    saveEngineChoice(EngineChoice(SERVER_ENGINE, url, token))


def activateOn(editor, url: str, token: str = TOKEN):
    chooseServer(url, token)
    effect = editor.activate()
    assert effect.session is not None, effect.options.statusLabel.text
    return effect


@pytest.fixture
def noPackagesHere(samModule, monkeypatch):
    """This Slicer has none of SAM's packages (no PyTorch): a server needs none here."""
    import SAMSegmentEffect.dependencies as dependencies

    monkeypatch.setattr(dependencies, "missingRequirements", lambda: ["torch>=2.1"])
    monkeypatch.setattr(dependencies, "_satisfied", False)


@pytest.fixture
def remoteEffect(editor, server, noLocalEngine, noPackagesHere):
    effect = activateOn(editor, server.url)
    assert not effect.options.installButton.visible
    editor.host.runUntil(lambda: effect.session.modelReady, timeout=120, message="the model loaded on the server")
    return effect


def clickAndApply(effect, editor, i: int = 32, j: int = 30) -> None:
    """A click, its preview, Apply: the whole round trip of one prompt."""
    editor.widget.click(editor.red, editor.xyOf(i, j))
    editor.host.runUntil(lambda: effect.session.canApply, timeout=120, message="a preview")
    effect.options.applyButton.click()
    assert not effect.session.canApply


def showsError(effect) -> bool:
    return ERROR_STYLE in effect.options.statusLabel.styleSheet


def freePort() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_prompts_preview_propagation_cancel_and_undo_work_against_a_server(remoteEffect, editor, server):
    effect = remoteEffect
    assert effect.options.serverFrame.visible and effect.options.engineSelector.currentData == "server"
    clickAndApply(effect, editor)
    written = editor.segmentArray()
    assert written[6].any() and not written[5].any()
    editor.widget.logic.Undo()
    assert not editor.segmentArray().any()

    effect.options.limitRangeCheckBox.checked = True
    effect.options.firstSliceSpinBox.value, effect.options.lastSliceSpinBox.value = 5, 7
    editor.widget.click(editor.red, editor.xyOf(32, 30))
    effect.options.propagateButton.click()
    assert effect.options.cancelPropagationButton.enabled
    editor.host.runUntil(lambda: not effect.session.propagating, timeout=120, message="the propagation")
    written = editor.segmentArray()
    assert not written[:5].any() and not written[8:].any() and not showsError(effect)
    editor.widget.undo()
    assert not editor.segmentArray().any()

    effect.options.limitRangeCheckBox.checked = False
    editor.widget.click(editor.red, editor.xyOf(32, 30))
    effect.options.propagateButton.click()
    effect.options.cancelPropagationButton.click()
    editor.host.runUntil(lambda: not effect.session.propagating, timeout=120, message="the cancelled propagation")
    # Cancelled, or finished first (random weights stop early): either way the buttons come back.
    assert effect.options.everythingButton.enabled and not effect.options.cancelPropagationButton.enabled
    assert not showsError(effect), effect.options.statusLabel.text
    assert server.sessions() == 1  # this Slicer's one session


def test_a_wrong_token_is_refused_with_a_clear_message_then_the_right_one_works(editor, server, noLocalEngine):
    effect = activateOn(editor, server.url, token="not-the-token")
    editor.host.runUntil(lambda: "refused the token" in effect.options.statusLabel.text, timeout=60, message="401")
    assert server.url in effect.options.statusLabel.text and showsError(effect)
    assert not effect.session.modelReady
    effect.options.testConnectionButton.click()
    editor.host.runUntil(lambda: "refused the token" in effect.options.connectionLabel.text, timeout=30)

    effect.options.serverTokenEdit.type(TOKEN)  # the user enters the right token and presses Return
    editor.host.runUntil(lambda: effect.session is not None and effect.session.modelReady, timeout=120)
    clickAndApply(effect, editor)
    assert editor.segmentArray()[6].any()
    from SAMSegmentEffect.settings import engineChoice

    assert engineChoice().token == TOKEN  # kept in Slicer's settings ...
    editor.scene.SetSaveToXMLString(1)
    editor.scene.Commit()
    assert TOKEN not in editor.scene.GetSceneXMLString()  # ... never in the scene


def test_a_server_restarted_mid_session_is_rebuilt_and_the_next_click_works(remoteEffect, editor, server):
    effect = remoteEffect
    clickAndApply(effect, editor)
    before = np.array(editor.segmentArray())
    engine = slicer.util.getModuleLogic("SAMSegment").engine()

    server.stop(signal.SIGKILL)  # the replica dies, or is scaled away ...
    server.start()  # ... and one without this session takes its place, on the same address
    assert (np.array(editor.segmentArray()) == before).all() and not showsError(effect)
    clickAndApply(effect, editor, 30, 28)  # the session is rebuilt: model and volume sent again
    assert not showsError(effect), effect.options.statusLabel.text
    assert engine.restarts == 1 and server.sessions() == 1


def test_a_replica_replaced_behind_a_balancer_answers_session_lost_and_the_session_is_rebuilt(
    editor, server, noLocalEngine
):
    proxy = IdleClosingProxy(server.port, idle_s=60)  # the department's load balancer
    replacement = TinyServer(TOKEN, server.wait)
    try:
        effect = activateOn(editor, proxy.url)
        editor.host.runUntil(lambda: effect.session.modelReady, timeout=120, message="the model")
        clickAndApply(effect, editor)
        before = np.array(editor.segmentArray())
        replacement.start()
        proxy.retarget(replacement.port)  # the replica holding the session is scaled away
        editor.host.runFor(0.5)
        assert (np.array(editor.segmentArray()) == before).all() and not showsError(effect)
        clickAndApply(effect, editor, 30, 28)  # 404 session_lost: a new session, model and volume sent again
        engine = slicer.util.getModuleLogic("SAMSegment").engine()
        assert not showsError(effect), effect.options.statusLabel.text
        assert engine.restarts == 1 and replacement.sessions() == 1
    finally:
        proxy.close()
        replacement.close()


def test_an_idle_connection_closed_by_a_proxy_is_reopened_silently(editor, server, noLocalEngine):
    proxy = IdleClosingProxy(server.port, idle_s=0.3)
    try:
        effect = activateOn(editor, proxy.url)
        editor.host.runUntil(lambda: effect.session.modelReady, timeout=120, message="the model")
        clickAndApply(effect, editor)
        editor.host.runFor(1.5)  # the user looks at the result; the proxy closes the idle connection
        assert proxy.closed_idle >= 1
        clickAndApply(effect, editor, 30, 28)
        engine = slicer.util.getModuleLogic("SAMSegment").engine()
        assert not showsError(effect), effect.options.statusLabel.text
        assert engine.reconnects >= 1 and engine.restarts == 0  # reopened, never lost
    finally:
        proxy.close()


def test_a_stopped_server_gets_a_clear_message_and_slicer_stays_usable(remoteEffect, editor, server):
    effect = remoteEffect
    clickAndApply(effect, editor)
    before = np.array(editor.segmentArray())

    server.stop()
    editor.widget.click(editor.red, editor.xyOf(30, 28))
    editor.host.runUntil(lambda: "cannot be reached" in effect.options.statusLabel.text, timeout=60)
    status = effect.options.statusLabel.text
    assert server.url in status and "unchanged" in status and showsError(effect)
    assert (np.array(editor.segmentArray()) == before).all()
    assert effect.session is not None and effect.options.clearButton.enabled  # Slicer goes on

    server.start()  # the administrator starts it again
    effect.session.clearPrompts()
    clickAndApply(effect, editor, 30, 28)
    assert not showsError(effect), effect.options.statusLabel.text


def test_the_connection_test_reports_the_round_trip_or_what_is_wrong(editor, server, noLocalEngine):
    effect = activateOn(editor, server.url)
    label = effect.options.connectionLabel
    effect.options.testConnectionButton.click()
    assert label.text.startswith("Connecting")  # the answer comes from the event loop, not a wait
    assert not effect.options.testConnectionButton.enabled
    editor.host.runUntil(lambda: label.text.startswith("Connected"), timeout=30, message="the health answer")
    roundTrip = int(re.search(r"round trip (\d+) ms", label.text).group(1))
    assert "protocol v1" in label.text and "litemedsam" in label.text and roundTrip < 1000
    assert effect.options.testConnectionButton.enabled
    print(f"connection test on loopback: {label.text}")

    nobody = f"http://127.0.0.1:{freePort()}"
    effect.options.serverUrlEdit.text = nobody  # typed, not yet confirmed: the test uses what is typed
    effect.options.testConnectionButton.click()
    editor.host.runUntil(lambda: "cannot be reached" in label.text, timeout=30, message="the refusal")
    assert nobody in label.text and ERROR_STYLE in label.styleSheet

    effect.options.serverUrlEdit.text = "ftp://somewhere"
    effect.options.testConnectionButton.click()
    assert "not valid" in label.text and effect.options.testConnectionButton.enabled


def test_switching_the_engine_finishes_the_old_session_first(editor, server, tinyEngine):
    effect = activateOn(editor, server.url)
    editor.host.runUntil(lambda: effect.session.modelReady, timeout=120, message="the model on the server")
    clickAndApply(effect, editor)
    proxy = IdleClosingProxy(server.port, idle_s=60)  # the same server at another address
    try:
        effect.options.serverUrlEdit.type(proxy.url)
        editor.host.runUntil(lambda: effect.session is not None and effect.session.modelReady, timeout=120)
        editor.host.runUntil(lambda: server.sessions() == 1, timeout=30, message="the old session closed")
        clickAndApply(effect, editor, 30, 28)

        effect.options.engineSelector.select("local")  # back to this computer
        assert not effect.options.serverFrame.visible
        editor.host.runUntil(lambda: effect.session is not None and effect.session.modelReady, timeout=300)
        editor.host.runUntil(lambda: server.sessions() == 0, timeout=30, message="the server session closed")
        clickAndApply(effect, editor, 34, 30)
        assert not showsError(effect), effect.options.statusLabel.text
    finally:
        proxy.close()
    from SAMSegmentEffect.settings import engineChoice

    assert engineChoice().kind == "local" and engineChoice().url == proxy.url  # the address is kept
