import gzip
import json
import logging

import pytest
import spacy
from spacy.tokens import Doc, DocBin

from xapps import extensions
from xapps.errors import InputError
from xapps.linking.data import Document, Entity, write_bigbio_kb
from xapps.paths import data_root
from xapps.projection.io import (
    bio_to_spans,
    output_format,
    read_conll,
    read_pairs,
    read_targets,
    spans_to_bio,
    write_results,
)
from xapps.projection.types import (
    LabeledSpan,
    ProjectedSpan,
    ProjectionPair,
    ProjectionResult,
)

EUROPARL = data_root() / "europarl-ner"

IOB2 = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC", "O", "B-ORG"]
SPANS = [(0, 2, "PER"), (3, 4, "LOC"), (4, 6, "LOC"), (7, 8, "ORG")]


def write(path, text):
    path.write_text(text, encoding="utf-8", newline="")
    return path


# ------------------------------------------------------------------------------------ BIO


@pytest.mark.parametrize("tags", [
    IOB2,
    ["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-LOC", "O", "I-ORG"],  # IOB1
    ["B-PER", "E-PER", "O", "S-LOC", "B-LOC", "E-LOC", "O", "S-ORG"],  # BIOES
    ["B-PER", "L-PER", "O", "U-LOC", "B-LOC", "L-LOC", "O", "U-ORG"],  # BILOU
], ids=["iob2", "iob1", "bioes", "bilou"])
def test_bio_schemes_decode_alike_and_round_trip_as_iob2(tags):
    assert bio_to_spans(tags) == SPANS
    assert spans_to_bio(len(tags), SPANS) == IOB2


def test_bio_lenient_like_seqeval():
    # I- after another type starts an entity; E- after E- is a single-word entity
    assert bio_to_spans(["B-PER", "I-LOC", "E-LOC", "E-LOC", "I-MISC-X"]) == [
        (0, 1, "PER"), (1, 3, "LOC"), (3, 4, "LOC"), (4, 5, "MISC-X")]
    assert bio_to_spans([]) == []


@pytest.mark.parametrize("tag", ["X-PER", "B", "B-", "PER", "o", ""])
def test_bio_unknown_tag(tag):
    with pytest.raises(InputError, match=rf"\[E130\] s.conll:3, tag 2: '{tag}' is not a BIO"):
        bio_to_spans(["O", tag], where="s.conll:3")


@pytest.mark.parametrize("spans, problem", [
    ([(0, 2, "A"), (1, 3, "B")], "word span 1-3 'B' overlaps another span"),
    ([(2, 5, "A")], "word span 2-5 'A' is empty or not inside the 3 words"),
    ([(1, 1, "A")], "word span 1-1 'A' is empty or not inside the 3 words"),
    ([(0, 1, "")], "word span 0-1 '' has no label"),
])
def test_spans_to_bio_rejects(spans, problem):
    with pytest.raises(InputError, match=rf"\[E137\] r1: {problem}\. CoNLL output"):
        spans_to_bio(3, spans, where="r1")


# ---------------------------------------------------------------------------------- CoNLL

CONLL = """\ufeff-DOCSTART- -X- O O

# sent_id = 1
Angela\tB-PER
Merkel\tI-PER
visits\tO
Paris\tS-LOC


# a comment
#\tO
New B-LOC
York I-LOC
-DOCSTART-
unlabelled
tokens
"""


def test_read_conll_small(tmp_path):
    sentences = list(read_conll(write(tmp_path / "s.conll", CONLL)))
    assert [s.tokens for s in sentences] == [["Angela", "Merkel", "visits", "Paris"],
                                             ["#", "New", "York"], ["unlabelled", "tokens"]]
    first = sentences[0]
    assert first.text == "Angela Merkel visits Paris"
    assert first.words == [(0, 6), (7, 13), (14, 20), (21, 26)]
    assert first.spans == [LabeledSpan(0, 13, "PER"), LabeledSpan(21, 26, "LOC")]
    assert sentences[1].spans == [LabeledSpan(2, 10, "LOC")]
    assert sentences[2].tags == ["O", "O"] and sentences[2].spans == []


def test_read_conll_gz_same(tmp_path):
    path = tmp_path / "s.conll.gz"
    path.write_bytes(gzip.compress(CONLL.encode("utf-8")))
    assert [s.spans for s in read_conll(path)] == [
        s.spans for s in read_conll(write(tmp_path / "s.conll", CONLL))]


def test_read_conll_bad_tag_names_line(tmp_path):
    path = write(tmp_path / "s.conll", "a\tO\n\nb\tO\nc\tB_PER\n")
    with pytest.raises(InputError, match=rf"\[E130\] {path}:4: 'B_PER' is not a BIO tag"):
        list(read_conll(path))


def test_read_conll_missing_file(tmp_path):
    with pytest.raises(InputError, match=r"\[E059\] Cannot read .*nope.conll"):
        list(read_conll(tmp_path / "nope.conll"))


@pytest.mark.skipif(not (EUROPARL / "en.conll").is_file(),
                    reason=f"europarl-ner not under {EUROPARL} (set XAPPS_DATA)")
def test_europarl_en():
    path = EUROPARL / "en.conll"
    sentences = list(read_conll(path))
    assert len(sentences) == 799
    n_begin = sum(line.split("\t")[-1].startswith("B-")
                  for line in path.read_text(encoding="utf-8").splitlines())
    assert sum(len(s.spans) for s in sentences) == n_begin
    for s in sentences:
        starts = [w[0] for w in s.words]
        ends = [w[1] for w in s.words]
        for span in s.spans:
            first, last = starts.index(span.start), ends.index(span.end)
            assert s.text[span.start:span.end] == " ".join(s.tokens[first:last + 1])
    pairs = list(read_pairs(path, EUROPARL / "es.conll"))
    assert len(pairs) == 799 and all(p.target_words for p in pairs)


# -------------------------------------------------------------------------------- targets


def test_read_targets_txt_blank_lines(tmp_path):
    path = write(tmp_path / "t.txt", "Hola mundo\r\nAdiós\n\n\n")
    assert list(read_targets(path)) == [("Hola mundo", None), ("Adiós", None)]
    path = write(tmp_path / "t.txt", "Hola\n  \nAdiós\n")
    with pytest.raises(InputError, match=rf"\[E136\] {path}:2: the target sentence is empty"):
        list(read_targets(path))


def test_read_targets_jsonl(tmp_path):
    path = write(tmp_path / "t.jsonl", '{"text": "a bc", "words": [[0, 1], [2, 4]]}\n'
                                       '{"translation": "xyz"}\n')
    assert list(read_targets(path)) == [("a bc", [(0, 1), (2, 4)]), ("xyz", None)]
    write(path, '{"text": "a bc", "words": [[2, 4], [0, 1]]}\n')
    with pytest.raises(InputError, match=rf"\[E133\] {path}:1: 'words\[1\]' = \[0, 1\] is not"):
        list(read_targets(path))


# ---------------------------------------------------------------------------------- pairs


def test_pairs_conll_txt(tmp_path):
    src = write(tmp_path / "en.conll", "Angela\tB-PER\nMerkel\tI-PER\n\nParis\tB-LOC\n")
    tgt = write(tmp_path / "de.txt", "Angela Merkel\nParis\n")
    pairs = list(read_pairs(src, tgt, source_lang="en", target_lang="de"))
    assert pairs == [
        ProjectionPair("Angela Merkel", "Angela Merkel", [LabeledSpan(0, 13, "PER")],
                       [(0, 6), (7, 13)], None, source_lang="en", target_lang="de"),
        ProjectionPair("Paris", "Paris", [LabeledSpan(0, 5, "LOC")], [(0, 5)], None,
                       source_lang="en", target_lang="de")]


def test_pairs_conll_conll(tmp_path):
    src = write(tmp_path / "en.bio", "the\tO\nEU\tB-ORG\n")
    tgt = write(tmp_path / "es.tsv", "la\nUE\n")
    (pair,) = read_pairs(src, tgt)
    assert (pair.target, pair.target_words) == ("la UE", [(0, 2), (3, 5)])


def test_pairs_jsonl_translation(tmp_path):
    src = write(tmp_path / "s.jsonl", json.dumps({
        "id": 7, "text": "I saw Bob", "entities": [{"start": 6, "end": 9, "label": "PER"}],
        "translation": "Vi a Bob", "translation_words": [[0, 2], [3, 4], [5, 8]]}) + "\n")
    (pair,) = read_pairs(src)
    assert pair == ProjectionPair("I saw Bob", "Vi a Bob", [LabeledSpan(6, 9, "PER")], None,
                                  [(0, 2), (3, 4), (5, 8)], id="7")
    # a target file wins over the record's translation
    (pair,) = read_pairs(src, write(tmp_path / "t.txt", "Ich sah Bob\n"))
    assert (pair.target, pair.target_words) == ("Ich sah Bob", None)


def test_pairs_bigbio(tmp_path, caplog):
    src = tmp_path / "kb.json"
    text = "Severe pain in the left knee"
    write_bigbio_kb([Document("d1", text, "en", [
        Entity("T1", "pain", [(7, 11)], "DISO"),
        Entity("T2", "Severe knee", [(0, 6), (24, 28)], "DISO"),
        Entity("T3", "Severe knee", [(0, 6), (24, 28)], "DISO")])], src)
    with caplog.at_level(logging.WARNING, logger="xapps"):
        (pair,) = read_pairs(src, write(tmp_path / "t.txt", "Fuertes dolores\n"))
    assert pair.id == "d1" and pair.source == text and pair.source_lang == "en"
    assert pair.spans == [LabeledSpan(7, 11, "DISO"), LabeledSpan(0, 28, "DISO"),
                          LabeledSpan(0, 28, "DISO")]
    assert [r.message for r in caplog.records if "discontinuous" in r.message] == [
        f"{src}: entity 'T2' of document 'd1' is discontinuous; it and any others in this file "
        "are projected as their outer span [0, 28)"]


def test_pairs_bigbio_needs_type(tmp_path):
    src = tmp_path / "kb.bigbio.jsonl"
    write_bigbio_kb([Document("d1", "pain", None, [Entity("T1", "pain", [(0, 4)])])], src)
    with pytest.raises(InputError, match=r"\[E139\] .* document 'd1': entity 'T1' has no type"):
        list(read_pairs(src, write(tmp_path / "t.txt", "dolor\n")))


def test_pairs_docbin_translation(tmp_path):
    extensions.register()
    nlp = spacy.blank("en")
    doc = nlp("Bob lives in  Rome")
    doc.ents = [doc.char_span(0, 3, "PER"), doc.char_span(14, 18, "LOC")]
    doc._.translation = "Bob vive en Roma"
    DocBin(store_user_data=True, docs=[doc]).to_disk(tmp_path / "s.spacy")
    (pair,) = read_pairs(tmp_path / "s.spacy", source_lang="en")
    assert pair == ProjectionPair("Bob lives in  Rome", "Bob vive en Roma",
                                  [LabeledSpan(0, 3, "PER"), LabeledSpan(14, 18, "LOC")],
                                  [(0, 3), (4, 9), (10, 12), (14, 18)], source_lang="en")
    DocBin(docs=[doc]).to_disk(tmp_path / "lost.spacy")
    with pytest.raises(InputError, match=r"\[E135\] .*lost.spacy doc 0: doc._.translation is "
                                         r"not set .*--tgt FILE"):
        list(read_pairs(tmp_path / "lost.spacy"))


def test_pairs_docbin_translation_doc_fixes_target_words(tmp_path):
    extensions.register()
    doc = spacy.blank("en")("Bob lives in Rome")
    doc.ents = [doc.char_span(0, 3, "PER")]
    doc._.translation = spacy.blank("es")("Bob vive en Roma")
    DocBin(store_user_data=True, docs=[doc]).to_disk(tmp_path / "s.spacy")
    (pair,) = read_pairs(tmp_path / "s.spacy", source_lang="en")
    assert pair.target == "Bob vive en Roma"
    assert pair.target_words == [(0, 3), (4, 8), (9, 11), (12, 16)]


def test_pairs_docbin_not_a_docbin(tmp_path):
    src = write(tmp_path / "s.spacy", "not a docbin")
    with pytest.raises(InputError, match=r"\[E138\] Cannot read .*s.spacy' as a spaCy DocBin"):
        list(read_pairs(src))


@pytest.mark.parametrize("n_src, n_tgt", [(3, 2), (2, 4)])
def test_pairs_count_mismatch(tmp_path, n_src, n_tgt):
    src = write(tmp_path / "s.conll", "".join(f"w{i}\tO\n\n" for i in range(n_src)))
    tgt = write(tmp_path / "t.txt", "".join(f"v{i}\n" for i in range(n_tgt)))
    pairs = read_pairs(src, tgt)
    assert len([next(pairs) for _ in range(min(n_src, n_tgt))]) == min(n_src, n_tgt)
    with pytest.raises(InputError, match=rf"\[E134\] The source '{src}' has {n_src} sentences "
                                         rf"but the target '{tgt}' has {n_tgt}\."):
        next(pairs)


@pytest.mark.parametrize("record, message", [
    ({"text": "abc", "spans": [{"start": 1, "end": 9, "label": "X"}]},
     r"'spans\[0\]' has start=1, end=9; expected integers with 0 <= start < end <= 3"),
    ({"text": "abc", "entities": [{"start": 2, "end": 2, "label": "X"}]},
     r"'entities\[0\]' has start=2, end=2"),
    ({"text": "abc", "spans": [{"start": 0, "end": 1}]}, r"'spans\[0\].label' is missing"),
    ({"text": "abc", "words": [[0, 4]]}, r"'words\[0\]' = \[0, 4\] is not \[start, end\]"),
    ({"spans": []}, r"field 'text' is missing"),
    ({"text": "a", "translation": "b", "translation_words": [[0, 2]]},
     r"'translation_words\[0\]' = \[0, 2\]"),
])
def test_pairs_jsonl_bad_records(tmp_path, record, message):
    src = write(tmp_path / "s.jsonl", '{"text": "fine", "translation": "bien"}\n\n'
                + json.dumps(record) + "\n")
    with pytest.raises(InputError, match=rf"\[E133\] {src}:3: {message}"):
        list(read_pairs(src))


def test_pairs_missing_translation(tmp_path):
    src = write(tmp_path / "s.jsonl", '{"text": "a", "translation": "b"}\n{"text": "c"}\n')
    with pytest.raises(InputError, match=rf"\[E135\] {src}:2: the record has no 'translation' "
                                         r"field, and no target file was given\. Pass the "
                                         r"translations with --tgt FILE"):
        list(read_pairs(src))
    conll = write(tmp_path / "s.conll", "a\tO\n")
    with pytest.raises(InputError, match=r"\[E135\] .*s.conll: a conll source holds no trans"):
        read_pairs(conll)  # raised before any pair is asked for


@pytest.mark.parametrize("name, fmt, message", [
    ("s.xml", None, r"the ending '.xml' is not a known one"),
    ("s.txt", None, r"txt is not a source format"),
    ("s.conll", "csv", r"unknown format 'csv'"),
])
def test_pairs_unknown_format(tmp_path, name, fmt, message):
    with pytest.raises(InputError, match=rf"\[E132\] Cannot tell the source format of .*{name}'"
                                         rf": {message}\. Expected a file name ending in "
                                         r"\.conll \(conll\), .*\.spacy \(docbin\).*"
                                         r"\(conll, jsonl, bigbio, docbin\)"):
        read_pairs(tmp_path / name, source_format=fmt)


def test_output_format():
    assert [output_format(p) for p in ("a.iob", "a.jsonl", "a.bigbio.jsonl", "a.json",
                                       "a.docbin")] == ["conll", "jsonl", "bigbio", "bigbio",
                                                        "docbin"]
    assert output_format("a.out", "jsonl") == "jsonl"
    with pytest.raises(InputError, match=r"\[E132\] .*output format of 'a.conll.gz'"):
        output_format("a.conll.gz")


# -------------------------------------------------------------------------------- writers


def results():
    pair = ProjectionPair("Angela Merkel visits Paris", "Angela  Merkel besucht Paris.",
                          [LabeledSpan(0, 13, "PER"), LabeledSpan(21, 26, "LOC"),
                           LabeledSpan(14, 20, "X")], id="s1", target_lang="de")
    words = [(0, 6), (8, 14), (15, 22), (23, 28), (28, 29)]
    spans = [ProjectedSpan(0, 14, "PER", 0, 0.9), ProjectedSpan(23, 28, "LOC", 1, 0.75)]
    second = ProjectionPair("Rome", "Roma", [LabeledSpan(0, 4, "LOC")])
    return [ProjectionResult(pair, spans, words, unprojected=[2]),
            ProjectionResult(second, [ProjectedSpan(0, 4, "LOC", 0, 1.0)], [(0, 4)])]


def test_write_conll_round_trip(tmp_path):
    out = tmp_path / "out.conll"
    assert write_results(results(), out) == 2
    assert out.read_text(encoding="utf-8") == (
        "Angela\tB-PER\nMerkel\tI-PER\nbesucht\tO\nParis\tB-LOC\n.\tO\n\nRoma\tB-LOC\n\n")
    assert [s.spans for s in read_conll(out)] == [
        [LabeledSpan(0, 13, "PER"), LabeledSpan(22, 27, "LOC")], [LabeledSpan(0, 4, "LOC")]]


def test_write_jsonl_round_trip(tmp_path):
    out = tmp_path / "out.jsonl"
    assert write_results(results(), out, include_source=True) == 2
    first, second = (json.loads(line) for line in out.read_text(encoding="utf-8").splitlines())
    assert first == {
        "id": "s1", "text": "Angela  Merkel besucht Paris.",
        "words": [[0, 6], [8, 14], [15, 22], [23, 28], [28, 29]],
        "spans": [{"start": 0, "end": 14, "label": "PER", "text": "Angela  Merkel",
                   "score": 0.9, "source_index": 0},
                  {"start": 23, "end": 28, "label": "LOC", "text": "Paris", "score": 0.75,
                   "source_index": 1}],
        "unprojected": [{"start": 14, "end": 20, "label": "X", "text": "visits"}],
        "source": "Angela Merkel visits Paris",
        "source_spans": [{"start": 0, "end": 13, "label": "PER", "text": "Angela Merkel"},
                         {"start": 21, "end": 26, "label": "LOC", "text": "Paris"},
                         {"start": 14, "end": 20, "label": "X", "text": "visits"}]}
    assert second["id"] == "1" and second["unprojected"] == []
    write_results(results(), out)
    assert "source" not in json.loads(out.read_text(encoding="utf-8").splitlines()[0])
    # the output is itself a labelled source and a target file
    pairs = list(read_pairs(out, write(tmp_path / "t.txt", "x\ny\n")))
    assert [p.spans for p in pairs] == [[s.labeled for s in r.spans] for r in results()]
    assert [p.source_words for p in pairs] == [r.target_words for r in results()]
    assert [t for t, _ in read_targets(out)] == [r.pair.target for r in results()]


def test_write_bigbio_round_trip(tmp_path):
    out = tmp_path / "out.json"
    assert write_results(results(), out) == 2
    pairs = list(read_pairs(out, write(tmp_path / "t.txt", "x\ny\n")))
    assert [(p.id, p.source, p.source_lang, p.spans) for p in pairs] == [
        ("s1", "Angela  Merkel besucht Paris.", "de",
         [LabeledSpan(0, 14, "PER"), LabeledSpan(23, 28, "LOC")]),
        ("1", "Roma", None, [LabeledSpan(0, 4, "LOC")])]


def test_write_docbin_round_trip(tmp_path):
    out = tmp_path / "out.spacy"
    assert write_results(results(), out) == 2
    docs = list(DocBin().from_disk(out).get_docs(spacy.blank("de").vocab))
    assert [d.text for d in docs] == [r.pair.target for r in results()]
    assert [t.text for t in docs[0]] == ["Angela", " ", "Merkel", "besucht", "Paris", "."]
    pairs = list(read_pairs(out, write(tmp_path / "t.txt", "x\ny\n"), source_lang="de"))
    assert [p.spans for p in pairs] == [[s.labeled for s in r.spans] for r in results()]


def test_write_docbin_blank_tokenizer_expands(tmp_path):
    pair = ProjectionPair("a", "Die Hauptstadt", [LabeledSpan(0, 1, "X")])
    result = ProjectionResult(pair, [ProjectedSpan(6, 9, "X", 0, 1.0)], [])
    write_results([result], tmp_path / "o.spacy")
    (doc,) = DocBin().from_disk(tmp_path / "o.spacy").get_docs(spacy.blank("xx").vocab)
    assert [(e.text, e.label_) for e in doc.ents] == [("Hauptstadt", "X")]


def test_write_conll_unaligned_span(tmp_path):
    result = results()[0]
    result.spans.append(ProjectedSpan(16, 22, "Y", 2, 0.5))
    with pytest.raises(InputError, match=r"\[E137\] result 0 \(id 's1'\): span 16-22 'esucht' "
                                         r"does not start and end on target words"):
        write_results([result], tmp_path / "o.conll")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name", ["o.conll", "o.jsonl", "o.json", "o.bigbio.jsonl", "o.spacy"])
def test_failed_write_leaves_nothing(tmp_path, name):
    def failing():
        yield results()[0]
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        write_results(failing(), tmp_path / name)
    assert not list(tmp_path.iterdir())
    write(tmp_path / name, "old")
    with pytest.raises(RuntimeError, match="boom"):
        write_results(failing(), tmp_path / name)
    assert [p.name for p in tmp_path.iterdir()] == [name]
    assert (tmp_path / name).read_text(encoding="utf-8") == "old"


def test_write_docbin_overlap(tmp_path):
    pair = ProjectionPair("a", "x y", [])
    spans = [ProjectedSpan(0, 3, "A", 0, 1.0), ProjectedSpan(2, 3, "B", 1, 1.0)]
    with pytest.raises(InputError, match=r"\[E137\] result 0: spans overlap"):
        write_results([ProjectionResult(pair, spans, [(0, 1), (2, 3)])], tmp_path / "o.spacy")
    assert not list(tmp_path.iterdir())


def test_doc_translation_extension():
    extensions.register()
    doc = Doc(spacy.blank("xx").vocab, words=["a"])
    assert doc._.translation is None


def test_pairs_without_target_for_translate_train(tmp_path):
    conll = write(tmp_path / "s.conll", "Bob\tB-PER\n\nRome\tB-LOC\n")
    assert [(p.source, p.target, p.target_words) for p in
            read_pairs(conll, require_target=False)] == [("Bob", "", None), ("Rome", "", None)]
    kb = tmp_path / "kb.json"
    write_bigbio_kb([Document("d1", "pain", "en", [Entity("T1", "pain", [(0, 4)], "DISO")])], kb)
    assert [p.target for p in read_pairs(kb, require_target=False)] == [""]
    # a record's own translation is still used; an empty one is still an error
    src = write(tmp_path / "s.jsonl", '{"text": "a", "translation": "b"}\n{"text": "c"}\n')
    assert [p.target for p in read_pairs(src, require_target=False)] == ["b", ""]
    write(src, '{"text": "a", "translation": " "}\n')
    with pytest.raises(InputError, match=rf"\[E136\] {src}:1: the target sentence is empty"):
        list(read_pairs(src, require_target=False))
    extensions.register()
    doc = spacy.blank("en")("Bob")
    DocBin(docs=[doc]).to_disk(tmp_path / "lost.spacy")
    assert [p.target for p in read_pairs(tmp_path / "lost.spacy", require_target=False)] == [""]
