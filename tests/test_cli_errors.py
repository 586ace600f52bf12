"""The CLI's last net: errors that escape a command's own checks still end in one coded line
and a documented exit code, never a traceback (unless -vv asks for it)."""
import click
import pytest
from cli_checks import assert_refused, invoke

from xapps.cli import main


@pytest.fixture()
def failing(monkeypatch):
    """A throwaway `xapps boom KIND` command that raises the named exception."""
    @click.command("boom")
    @click.argument("kind")
    def boom(kind):
        if kind == "oserror":
            raise PermissionError(13, "Permission denied", "/data/out.jsonl")
        if kind == "interrupt":
            raise KeyboardInterrupt
        raise RuntimeError("something nobody planned for")

    monkeypatch.setitem(main.commands, "boom", boom)


def test_an_escaping_os_error_is_one_line_with_the_path(failing):
    out = assert_refused(invoke("boom", "oserror"), "E205", "/data/out.jsonl",
                         "Permission denied")
    assert out.count("\n") == 1


def test_an_unexpected_error_is_a_bug_report_line_with_exit_1(failing):
    assert_refused(invoke("boom", "bug"), "E206", "RuntimeError",
                   "something nobody planned for", "-vv", exit_code=1)


def test_interrupt_exits_130(failing):
    result = invoke("boom", "interrupt")
    assert result.exit_code == 130 and "Traceback" not in result.output
    assert "run the same command again" in result.output


def test_vv_shows_the_traceback(failing):
    with pytest.raises(RuntimeError, match="nobody planned"):
        invoke("-vv", "boom", "bug")


def test_usage_errors_carry_a_code_and_the_usage(tmp_path):
    missing = tmp_path / "no-such-job"
    out = assert_refused(invoke("report", missing, "--html", tmp_path / "r.html"), "E210",
                         str(missing), "xapps report --help")
    assert out.startswith("Usage: xapps report")
    assert_refused(invoke("annotate", "--no-such-option"), "E210", "--no-such-option")
