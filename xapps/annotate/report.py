"""``xapps report``: one self-contained HTML page about a batch job's output.

What a person checks after a run: how much was annotated and how fast, which labels and
concepts were found in which languages, how confident the linker and extractor were
(histograms), a sample of records rendered displaCy-style with linked concept ids and names
and the triples found, the slowest batches and the records that failed. One streaming pass
over the output, so memory stays bounded; no external scripts, fonts or styles.
"""
from __future__ import annotations

import heapq
import html
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from ..fileio import atomic_write_text, ensure_writable
from .job import SUMMARY, iter_errors, iter_output, read_manifest

PALETTE = ["#7aecec", "#bfeeb7", "#feca74", "#ff9561", "#aa9cfc", "#c887fb", "#9cc9cc",
           "#ffeb80", "#ff8197", "#f0d0ff", "#bfe1d9", "#e4e7d2"]
N_BINS = 20


class _Stats:
    def __init__(self, examples: int) -> None:
        self.records = self.entities = self.linked = self.triples = 0
        self.labels: Counter = Counter()
        self.langs: Counter = Counter()
        self.lang_entities: Counter = Counter()
        self.concepts: Counter = Counter()
        self.concept_names: dict[str, str] = {}
        self.link_scores: list[float] = []
        self.triple_scores: list[float] = []
        self.slowest: list[tuple[float, int, dict]] = []
        self.examples: dict[str, list[dict]] = {}
        self.n_examples = examples
        self._seq = 0

    def add(self, rec: dict) -> None:
        self.records += 1
        lang = rec.get("lang") or "unknown"
        self.langs[lang] += 1
        ents = rec.get("ents") or []
        self.entities += len(ents)
        self.lang_entities[lang] += len(ents)
        for ent in ents:
            self.labels[ent["label"]] += 1
            if ent.get("kb_id"):
                self.linked += 1
                self.concepts[ent["kb_id"]] += 1
                if ent.get("kb_name"):
                    self.concept_names[ent["kb_id"]] = ent["kb_name"]
            if ent.get("kb_ents"):
                self._sample(self.link_scores, float(ent["kb_ents"][0][1]))
        triples = rec.get("triples") or []
        self.triples += len(triples)
        for triple in triples:
            if triple.get("confidence") is not None:
                self._sample(self.triple_scores, float(triple["confidence"]))
        timing = rec.get("timing")
        if timing and timing.get("batch_records"):
            per_record = timing["batch_ms"] / timing["batch_records"]
            self._seq += 1
            entry = (per_record, self._seq, {"id": rec["id"], "lang": lang,
                                             "chars": len(rec["text"]),
                                             "batch_ms": timing["batch_ms"],
                                             "batch_records": timing["batch_records"]})
            if len(self.slowest) < 10:
                heapq.heappush(self.slowest, entry)
            else:
                heapq.heappushpop(self.slowest, entry)
        keep = self.examples.setdefault(lang, [])
        if (ents or triples) and len(keep) < self.n_examples:
            keep.append(rec)

    def _sample(self, values: list[float], value: float) -> None:
        # every value up to 200k; a deterministic thinning beyond keeps memory bounded
        if len(values) < 200_000 or (self.entities + self.triples) % 10 == 0:
            values.append(value)

    def example_records(self) -> list[dict]:
        """Round-robin over languages, so every language shows up in the sample."""
        out: list[dict] = []
        lists = [self.examples[k] for k in sorted(self.examples)]
        i = 0
        while len(out) < self.n_examples and any(i < len(lst) for lst in lists):
            out.extend(lst[i] for lst in lists if i < len(lst))
            i += 1
        return out[: self.n_examples]


def _color(label: str, labels: list[str]) -> str:
    return PALETTE[labels.index(label) % len(PALETTE)] if label in labels else "#ddd"


def render_entities(text: str, ents: list[dict], labels: list[str]) -> str:
    """displaCy-style markup: each entity a <mark> with its label, concept id and name."""
    parts, pos = [], 0
    for ent in sorted(ents, key=lambda e: (e["start"], -e["end"])):
        if ent["start"] < pos:
            continue
        parts.append(html.escape(text[pos:ent["start"]]))
        kb = ""
        if ent.get("kb_id"):
            name = ent.get("kb_name") or ""
            title = html.escape(f"{ent['kb_id']} {name}".strip(), quote=True)
            kb = (f'<span class="kb" title="{title}">{html.escape(ent["kb_id"])}'
                  + (f" · {html.escape(name)}" if name else "") + "</span>")
        parts.append(
            f'<mark class="entity" data-label="{html.escape(ent["label"], quote=True)}" '
            f'style="background:{_color(ent["label"], labels)}">'
            f'{html.escape(text[ent["start"]:ent["end"]])}'
            f'<span class="label">{html.escape(ent["label"])}</span>{kb}</mark>')
        pos = ent["end"]
    parts.append(html.escape(text[pos:]))
    return "".join(parts).replace("\n", "<br>")


def _triples_table(triples: list[dict]) -> str:
    if not triples:
        return ""
    rows = []
    for t in triples:
        args = {a["role"]: a["text"] for a in t.get("arguments", [])}
        rest = ", ".join(f"{r}: {v}" for r, v in sorted(args.items()) if r not in ("ARG0", "ARG1"))
        conf = t.get("confidence")
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(x))}</td>" for x in (
            args.get("ARG0", ""), t["relation"]["text"], args.get("ARG1", ""), rest,
            "" if conf is None else f"{conf:.2f}")) + "</tr>")
    return ('<table class="triples"><tr><th>subject</th><th>relation</th><th>object</th>'
            "<th>more</th><th>conf.</th></tr>" + "".join(rows) + "</table>")


def _bars(counts: list[tuple[str, int]], title: str) -> str:
    if not counts:
        return f"<p class='empty'>No {html.escape(title.lower())}.</p>"
    top = max(c for _, c in counts) or 1
    rows = "".join(
        f'<tr><td class="key">{html.escape(k)}</td><td class="bar"><div style="width:'
        f'{100 * c / top:.1f}%"></div></td><td class="num">{c:,}</td></tr>' for k, c in counts)
    return f'<table class="bars" aria-label="{html.escape(title, quote=True)}">{rows}</table>'


def histogram_svg(values: list[float], title: str, bins: int = N_BINS) -> str:
    """An inline SVG histogram of scores (no scripts, no external resources)."""
    if not values:
        return f"<p class='empty'>No {html.escape(title.lower())}.</p>"
    lo, hi = min(values), max(values)
    if lo >= 0.0 and hi <= 1.0:  # probabilities and cosines: a fixed axis reads better
        lo, hi = 0.0, 1.0
    elif hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int((v - lo) / (hi - lo) * bins))] += 1
    width, height, pad = 420, 140, 24
    bar_w = (width - 2 * pad) / bins
    top = max(counts)
    rects = []
    for i, c in enumerate(counts):
        h = (height - 2 * pad) * c / top
        x = pad + i * bar_w
        label = f"{lo + i * (hi - lo) / bins:.2f}–{lo + (i + 1) * (hi - lo) / bins:.2f}: {c}"
        rects.append(f'<rect x="{x:.1f}" y="{height - pad - h:.1f}" width="{bar_w - 1:.1f}" '
                     f'height="{h:.1f}"><title>{label}</title></rect>')
    axis = (f'<text x="{pad}" y="{height - 6}">{lo:.2f}</text>'
            f'<text x="{width - pad}" y="{height - 6}" text-anchor="end">{hi:.2f}</text>'
            f'<text x="{pad}" y="14">max {top:,} / bin, n = {len(values):,}</text>')
    return (f'<svg class="hist" role="img" aria-label="{html.escape(title, quote=True)}" '
            f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
            + "".join(rects) + axis + "</svg>")


CSS = """
body{font:14px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222}
header{background:#1f2937;color:#fff;padding:16px 28px}header h1{margin:0;font-size:20px}
main{padding:8px 28px 40px;max-width:1200px}h2{margin-top:28px;border-bottom:1px solid #ddd}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{background:#f3f4f6;border-radius:6px;
padding:10px 16px;min-width:120px}.card b{display:block;font-size:20px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(360px,1fr));gap:20px}
table{border-collapse:collapse}td,th{padding:3px 8px;text-align:left;vertical-align:top}
table.list tr:nth-child(even),table.triples tr:nth-child(even){background:#f7f7f7}
.bars td.bar{width:240px}.bars td.bar div{background:#60a5fa;height:12px;border-radius:2px}
.num{text-align:right;font-variant-numeric:tabular-nums}.key{white-space:nowrap}
.hist rect{fill:#60a5fa}.hist text{font-size:11px;fill:#555}
.record{border:1px solid #e5e7eb;border-radius:6px;padding:10px 14px;margin:10px 0}
.record .meta{color:#666;font-size:12px;margin-bottom:6px}
.text{line-height:2.4;white-space:normal}
mark.entity{padding:2px 5px;margin:0 2px;border-radius:4px;line-height:1}
mark.entity .label{font-size:10px;font-weight:bold;text-transform:uppercase;margin-left:6px}
mark.entity .kb{font-size:10px;margin-left:6px;color:#333;background:#fff8;padding:0 3px;
border-radius:3px}table.triples{font-size:13px;margin-top:6px}.empty{color:#888}
.filters{margin:8px 0}.filters select,.filters input{margin-right:8px}code{font-size:12px}
.hidden{display:none}
"""

JS = """
(function () {
  var lang = document.getElementById('f-lang');
  var label = document.getElementById('f-label');
  var query = document.getElementById('f-text');
  var shown = document.getElementById('f-count');
  function apply() {
    var n = 0;
    document.querySelectorAll('.record').forEach(function (el) {
      var ok = (!lang.value || el.dataset.lang === lang.value) &&
        (!label.value || el.querySelector('mark[data-label="' + label.value + '"]')) &&
        (!query.value || el.textContent.toLowerCase().indexOf(query.value.toLowerCase()) >= 0);
      el.classList.toggle('hidden', !ok);
      if (ok) { n += 1; }
    });
    shown.textContent = n;
  }
  [lang, label, query].forEach(function (el) { el.addEventListener('input', apply); });
  apply();
})();
"""


def _options(values: list[str], all_label: str) -> str:
    return f'<option value="">{all_label}</option>' + "".join(
        f'<option value="{html.escape(v, quote=True)}">{html.escape(v)}</option>'
        for v in values)


def build_report(out_dir: str | os.PathLike, *, examples: int = 50) -> tuple[str, dict]:
    """The HTML page and the counts it shows."""
    out_dir = Path(out_dir)
    manifest = read_manifest(out_dir)
    stats = _Stats(examples)
    for rec in iter_output(out_dir):
        stats.add(rec)
    errors = list(iter_errors(out_dir))
    summary_path = out_dir / SUMMARY
    try:  # the last run's speed only; a damaged summary must not stop the report
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        summary = {}
    summary = summary if isinstance(summary, dict) else {}
    labels = [k for k, _ in stats.labels.most_common()]
    prov = manifest.get("provenance") or {}

    cards = [("records", f"{stats.records:,}"), ("errors", f"{len(errors):,}"),
             ("entities", f"{stats.entities:,}"),
             ("linked", f"{stats.linked:,}"), ("triples", f"{stats.triples:,}"),
             ("languages", f"{len(stats.langs)}"), ("shards", f"{len(manifest['shards'])}")]
    if summary.get("records_per_second"):
        cards.append(("records/s (last run)", f"{summary['records_per_second']:,.1f}"))
    cards_html = "".join(f'<div class="card"><b>{v}</b>{html.escape(k)}</div>' for k, v in cards)

    lang_rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td class='num'>{n:,}</td>"
        f"<td class='num'>{stats.lang_entities[k]:,}</td></tr>"
        for k, n in stats.langs.most_common())
    concept_rows = "".join(
        f"<tr><td><code>{html.escape(c)}</code></td><td>"
        f"{html.escape(stats.concept_names.get(c, ''))}</td><td class='num'>{n:,}</td></tr>"
        for c, n in stats.concepts.most_common(20))
    slow_rows = "".join(
        f"<tr><td>{html.escape(str(e['id']))}</td><td>{html.escape(e['lang'])}</td>"
        f"<td class='num'>{e['chars']:,}</td><td class='num'>{ms:.2f}</td>"
        f"<td class='num'>{e['batch_ms']:.0f} ms / {e['batch_records']}</td></tr>"
        for ms, _, e in sorted(stats.slowest, reverse=True))
    reasons = Counter(e["reason"].split(" (")[0] for e in errors)
    error_rows = "".join(
        f"<tr><td>{html.escape(str(e.get('id') or ''))}</td><td>"
        f"{html.escape(os.path.basename(str(e.get('source'))))}:{e.get('line') or ''}</td>"
        f"<td>{html.escape(e['reason'])}</td></tr>" for e in errors[:100])

    sample = stats.example_records()
    records_html = "".join(
        f'<div class="record" data-lang="{html.escape(r.get("lang") or "unknown", quote=True)}">'
        f'<div class="meta"><b>{html.escape(str(r["id"]))}</b> · '
        f'{html.escape(r.get("lang") or "unknown")} · {len(r.get("ents") or [])} entities'
        f' · {len(r.get("triples") or [])} triples</div>'
        f'<div class="text">{render_entities(r["text"], r.get("ents") or [], labels)}</div>'
        f"{_triples_table(r.get('triples') or [])}</div>" for r in sample)

    models = ", ".join(f"{m['name']} ({(m.get('sha256') or '')[:12]})"
                       for m in prov.get("models", [])) or "none"
    prov_html = (f"<p>Pipeline <code>{html.escape(str(prov.get('pipeline', '?')))}</code>, "
                 f"components {html.escape(', '.join(prov.get('components', [])))}; config "
                 f"sha256 <code>{html.escape(str(prov.get('config_sha256', ''))[:16])}</code>; "
                 f"models {html.escape(models)}; KB {html.escape(str(prov.get('kb')))}; "
                 f"xapps {html.escape(str(prov.get('xapps')))}, spaCy "
                 f"{html.escape(str(prov.get('spacy')))}.</p>")

    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>xapps annotate report: {html.escape(out_dir.name)}</title>
<style>{CSS}</style></head>
<body><header><h1>xapps annotate — {html.escape(out_dir.name)}</h1></header><main>
<section id="summary"><h2>Summary</h2><div class="cards">{cards_html}</div>{prov_html}</section>
<section class="grid">
<div id="labels"><h2>Entities per label</h2>{_bars(stats.labels.most_common(), "labels")}</div>
<div id="languages"><h2>Records per language</h2><table class="list"><tr><th>language</th>
<th>records</th><th>entities</th></tr>{lang_rows}</table></div>
<div id="link-scores"><h2>Linking scores (best candidate)</h2>
{histogram_svg(stats.link_scores, "linking scores")}</div>
<div id="triple-scores"><h2>Triple confidence</h2>
{histogram_svg(stats.triple_scores, "triple confidences")}</div>
</section>
<section id="concepts"><h2>Most frequent concepts</h2>
{('<table class="list"><tr><th>id</th><th>name</th><th>mentions</th></tr>' + concept_rows
  + '</table>') if concept_rows else "<p class='empty'>No linked concepts.</p>"}</section>
<section id="examples"><h2>Records</h2>
<div class="filters"><select id="f-lang" aria-label="language">
{_options(sorted(stats.examples), "all languages")}</select>
<select id="f-label" aria-label="label">{_options(labels, "all labels")}</select>
<input id="f-text" type="search" placeholder="filter text" aria-label="text">
<span><span id="f-count">{len(sample)}</span> shown</span></div>
{records_html or "<p class='empty'>No record has entities or triples.</p>"}</section>
<section id="slowest"><h2>Slowest records</h2><p>Time per record = its batch's time
divided by the batch's records (nlp.pipe runs a batch at once).</p>
<table class="list"><tr><th>id</th><th>lang</th><th>chars</th><th>ms / record</th>
<th>batch</th></tr>{slow_rows}</table></section>
<section id="errors"><h2>Failed records ({len(errors):,})</h2>
{_bars(reasons.most_common(10), "error reasons") if errors else ""}
{('<table class="list"><tr><th>id</th><th>where</th><th>reason</th></tr>' + error_rows
  + '</table>') if errors else "<p class='empty'>No failed records.</p>"}</section>
</main><script>{JS}</script></body></html>
"""
    counts: dict[str, Any] = {"records": stats.records, "entities": stats.entities,
                              "linked": stats.linked, "triples": stats.triples,
                              "errors": len(errors), "languages": dict(stats.langs),
                              "labels": dict(stats.labels), "examples": len(sample)}
    return page, counts


def write_report(out_dir: str | os.PathLike, html_path: str | os.PathLike, *,
                 examples: int = 50) -> dict:
    ensure_writable(html_path, fix="Pass --html in a folder you can write to.")
    page, counts = build_report(out_dir, examples=examples)
    atomic_write_text(html_path, page)
    return counts
