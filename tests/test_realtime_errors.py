"""realtime's errors sit under the project's one root: what the user gave (a file, an option,
a device, a peer's bytes) is an InputError that the CLIs word in one line with exit status 2;
a failure while running is a FlowGradError that is not an InputError."""
import pytest

from flowgrad.errors import FlowGradError, InputError
from realtime.dashboard import DashboardError
from realtime.demo import DemoError
from realtime.live import StartError
from realtime.overlay_video import OverlayVideoError
from realtime.pipeline import PipelineError
from realtime.protocol import ProtocolError
from realtime.publisher import PublishError
from realtime.subscribe import SubscribeError, SubscribeTimeout
from realtime.video_source import SourceError


@pytest.mark.parametrize("error", [StartError, SourceError, PublishError, ProtocolError, SubscribeError,
                                   DashboardError, DemoError, OverlayVideoError])
def test_errors_about_the_users_input_are_input_errors(error):
    assert issubclass(error, InputError)


def test_failures_while_running_are_under_the_root_but_not_input_errors():
    for error in (PipelineError, SubscribeTimeout):
        assert issubclass(error, FlowGradError) and not issubclass(error, InputError)
    assert issubclass(SubscribeTimeout, TimeoutError) and issubclass(PipelineError, RuntimeError)  # as before
    assert issubclass(ProtocolError, ValueError)  # decode's contract
