"""hydra/launcher=vectorized is a real Hydra launcher: Hydra's own conformance suites for launchers pass, run the way
hydra-joblib-launcher runs them on itself (plugins/hydra_joblib_launcher/tests in Hydra's repository).

The suites' apps are Hydra's test apps, not dlexp: for a task function that is not dlexp's, the launcher runs the
jobs one after another as Hydra's basic launcher does. Two flags make the plugin reachable from any Hydra app here:
the launcher's config lives in dlexp's config folder (`hydra.searchpath`), and an editable install cannot be listed
by Hydra's plugin scan, so the plugin class is registered by dlexp's own callback (`OwnLaunchers`, as in `dlexp
train`), or by hand for the suite that runs in this process.
"""

from __future__ import annotations

import pytest
from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.test_utils.launcher_common_tests import IntegrationTestSuite, LauncherTestSuite
from hydra.version import VersionBase
from packaging.version import Version
from pytest import mark

from dlexp.config import catalog
from hydra_plugins.dlexp_launchers.vectorized_launcher import VectorizedLauncher

SEARCH_PATH = f"hydra.searchpath=[file://{catalog.conf_dir()}]"  # where hydra/launcher/vectorized.yaml is
Plugins.instance().register(VectorizedLauncher)  # before the suites save Hydra's singletons


@pytest.fixture(autouse=True)
def unspecified_version_base():
    """The suites' apps name no version_base, and expect Hydra's default for that (jobs change directory); dlexp's
    own tests in this process compose with version_base="1.3", which Hydra keeps process-wide."""
    base = VersionBase.instance()
    kept, base.version_base = base.version_base, Version("1.1")  # what Hydra assumes for an app that names none
    yield
    base.version_base = kept


def test_discovery() -> None:
    assert VectorizedLauncher.__name__ in [x.__name__ for x in Plugins.instance().discover(Launcher)]


@mark.parametrize("launcher_name, overrides", [("vectorized", [SEARCH_PATH])])
class TestVectorizedLauncher(LauncherTestSuite):
    """Hydra's launcher test suite on this launcher."""


@mark.parametrize(
    "task_launcher_cfg, extra_flags",
    [
        (
            {},
            [
                "-m",
                "hydra/launcher=vectorized",
                SEARCH_PATH,
                "+hydra.callbacks.own_launchers={_target_: dlexp.config.callbacks.OwnLaunchers}",
            ],
        )
    ],
)
class TestVectorizedLauncherIntegration(IntegrationTestSuite):
    """Hydra's integration test suite (applications in their own processes) on this launcher."""
