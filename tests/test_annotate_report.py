import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from test_annotate_job import CODE, build_pipeline

from xapps.annotate.job import JobConfig, run_job
from xapps.annotate.report import (
    build_report,
    histogram_svg,
    render_entities,
    write_report,
)
from xapps.errors import InputError

TEXTS = [("de", "Der Patient hat Kopfschmerzen."), ("fr", "Il a de la fièvre."),
         ("es", "Tiene náuseas y qqqq."), ("en", "<script>alert(1)</script> headache & co")]


@pytest.fixture(scope="module")
def job_output(tmp_path_factory):
    sys.path.insert(0, str(CODE.parent))
    import annotate_components  # noqa: F401

    tmp = tmp_path_factory.mktemp("report")
    pipe = build_pipeline(tmp, extra=("xapps_test_triples",))
    lines = [json.dumps({"id": f"r{i}", "lang": lang, "text": text})
             for i, (lang, text) in enumerate(TEXTS * 3)]
    lines.insert(5, "{broken")
    (tmp / "in.jsonl").write_text("\n".join(lines) + "\n")
    run_job(JobConfig(pipeline=str(pipe), inputs=[str(tmp / "in.jsonl")],
                      output=str(tmp / "out"), shard_size=5, batch_size=2, progress=False,
                      code=[str(CODE)]))
    sys.path.remove(str(CODE.parent))
    return tmp / "out"


def test_report_counts_and_content(job_output):
    page, counts = build_report(job_output, examples=8)
    assert counts["records"] == 12 and counts["errors"] == 1
    assert counts["languages"] == {"de": 3, "fr": 3, "es": 3, "en": 3}
    assert counts["labels"] == {"DISO": 15} and counts["linked"] == 12
    assert counts["triples"] == 12 and counts["examples"] == 8
    assert '<mark class="entity" data-label="DISO"' in page
    assert "Kopfschmerzen<span class=\"label\">DISO</span>" in page
    assert "C02 · Headache" in page
    assert "<script>alert(1)</script>" not in page  # record text is escaped
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "invalid JSON" in page and "<svg class=\"hist\"" in page
    # the sample goes round the languages: the first four examples are four languages
    assert [page.count(f'data-lang="{lang}"') for lang in ("de", "fr", "es", "en")] == [2] * 4


def test_render_entities_and_histogram_are_plain_markup():
    text = "a Fieber b"
    html_ = render_entities(text, [{"start": 2, "end": 8, "label": "DISO", "kb_id": "C1",
                                    "kb_name": "Fever"}], ["DISO"])
    assert html_.startswith("a <mark") and html_.endswith("</mark> b")
    assert 'title="C1 Fever"' in html_
    svg = histogram_svg([0.1, 0.2, 0.9], "scores", bins=10)
    assert svg.count("<rect") == 10 and ">0.00<" in svg and ">1.00<" in svg
    assert "No scores" in histogram_svg([], "scores")


def test_report_of_a_folder_that_is_no_job(tmp_path):
    with pytest.raises(InputError, match=r"E189.*has no manifest.json"):
        build_report(tmp_path)


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def test_report_in_a_real_headless_browser(job_output, tmp_path):
    """The page loads in Chromium with no console errors, shows the entities with their
    concepts, and the language filter works."""
    required = os.environ.get("XAPPS_REQUIRE_BROWSER") == "1"
    chromium = _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if chromium is None or sync_playwright is None:
        if required:
            pytest.fail("XAPPS_REQUIRE_BROWSER=1 but chromium or playwright is missing")
        pytest.skip("needs Debian's chromium and the playwright package")
    html_path = tmp_path / "report.html"
    write_report(job_output, html_path, examples=12)
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        page = browser.new_page()
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
        page.goto(Path(html_path).as_uri())
        page.wait_for_load_state("load")
        marks = page.locator("mark.entity")
        assert marks.count() == 15
        first = marks.first
        assert first.is_visible()
        assert first.inner_text().startswith("Kopfschmerzen")
        assert first.locator(".label").inner_text() == "DISO"
        assert first.locator(".kb").inner_text() == "C02 · Headache"
        # the record text with markup in it shows as text, not as an element
        assert page.locator(".record .text", has_text="<script>alert(1)</script>").count() == 3
        assert page.locator("#f-count").inner_text() == "12"
        page.select_option("#f-lang", "fr")
        assert page.locator("#f-count").inner_text() == "3"
        visible = page.locator(".record:not(.hidden) mark.entity .kb")
        assert {visible.nth(i).inner_text() for i in range(visible.count())} == {
            "C03 · Fever"}
        page.fill("#f-text", "zzz-nothing")
        assert page.locator("#f-count").inner_text() == "0"
        assert page.locator("#errors tr").count() >= 2  # header + the broken line
        browser.close()
    assert problems == []


def test_cli_report(job_output, tmp_path):
    from click.testing import CliRunner

    from xapps.cli import main

    result = CliRunner().invoke(main, ["report", str(job_output), "--html",
                                       str(tmp_path / "r.html"), "--examples", "3"])
    assert result.exit_code == 0, result.output
    assert "Report of 12 records (15 entities, 1 errors)" in result.output
    page = (tmp_path / "r.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count('class="record"') == 3
    result = CliRunner().invoke(main, ["report", str(tmp_path), "--html", str(tmp_path / "x")])
    assert result.exit_code == 2 and "[E189]" in result.output
