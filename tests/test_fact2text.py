import json

import pytest
import spacy
import torch
from click.testing import CliRunner

from xapps.errors import InputError
from xapps.fact2text.data import (
    Fact,
    make_fact,
    normalize_entity,
    normalize_predicate,
    read_examples,
)
from xapps.fact2text.encoding import (
    ROLE_HEAD,
    ROLE_NONE,
    ROLE_QUALIFIER,
    ROLE_RELATION,
    ROLE_TAIL,
    linearise,
    token_roles,
)
from xapps.fact2text.evaluate import coverage, hallucinations, score, skeleton
from xapps.fact2text.retrieval import RetrievalGenerator, align, locate, relexicalise

WEBNLG = """<?xml version="1.0" ?>
<benchmark><entries>
<entry category="Airport" eid="1" size="1">
  <modifiedtripleset><mtriple>Aarhus | leader | Jacob_Bundsgaard</mtriple></modifiedtripleset>
  <lex comment="good" lang="" lid="Id1">The leader of Aarhus is Jacob Bundsgaard.</lex>
  <lex comment="" lang="cy" lid="Id2">Arweinydd Aarhus yw Jacob Bundsgaard.</lex>
</entry>
<entry category="Airport" eid="2" size="2">
  <modifiedtripleset>
    <mtriple>Aarhus_Airport | runwayLength | "2702.0"^^xsd:double</mtriple>
    <mtriple>Aarhus_Airport | cityServed | "Aarhus, Denmark"</mtriple>
  </modifiedtripleset>
  <lex comment="good" lang="" lid="Id1">Aarhus Airport serves Aarhus, Denmark.</lex>
</entry>
</entries></benchmark>
"""


def test_normalisation():
    assert normalize_entity("Alpena_County,_Michigan") == "Alpena County, Michigan"
    assert normalize_entity('"2702.0"^^xsd:double') == "2702.0"
    assert normalize_entity('"Aarhus, Denmark"') == "Aarhus, Denmark"
    assert normalize_predicate("elevationAboveTheSeaLevel") == "elevation above the sea level"
    assert normalize_predicate("date of birth") == "date of birth"


def test_readers(tmp_path):
    (tmp_path / "d.xml").write_text(WEBNLG)
    cy = read_examples(tmp_path / "d.xml", langs=["cy"])
    assert [(e.id, e.lang, e.texts) for e in cy] == [
        ("d/1", "cy", ["Arweinydd Aarhus yw Jacob Bundsgaard."])]
    en = read_examples(tmp_path / "d.xml", langs=["en"])
    assert en[1].facts == [Fact("Aarhus Airport", "runway length", "2702.0"),
                           Fact("Aarhus Airport", "city served", "Aarhus, Denmark")]
    rows = [{"sentence": "X est né.", "facts": [{"subject": "X", "predicate": "date of birth",
                                                  "object": "1900", "qualifiers": [
                                                      {"predicate": "place", "object": "Y"}]}],
             "language": "fr"},
            {"id": "w1", "triples": [["A_B", "leader", "C"]], "lang": "ru", "texts": ["т"]},
            {"sentence": "हिंदी", "all_triples": [["Ishmeet Singh", "occupation", "singer"]]}]
    (tmp_path / "x.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    xs = read_examples(tmp_path / "x.jsonl", lang="hi")
    assert xs[0].facts[0].qualifiers == (("place", "Y"),) and xs[0].lang == "fr"
    assert (xs[1].id, xs[1].facts[0].subject, xs[1].lang) == ("w1", "A B", "ru")
    assert (xs[2].lang, xs[2].texts) == ("hi", ["हिंदी"])
    (tmp_path / "g.json").write_text(json.dumps({"Q1": {"triples": [
        {"subject": "S", "predicate": "p", "object": "O"}], "sentence": "s"}}))
    assert read_examples(tmp_path / "g.json", lang="hi")[0].id == "Q1"
    (tmp_path / "bad.jsonl").write_text(json.dumps({"facts": [["only", "two"]]}) + "\n")
    with pytest.raises(InputError, match=r"E190.*bad.jsonl:1.*is not a fact"):
        read_examples(tmp_path / "bad.jsonl")


def test_linearisation_and_token_roles(tiny_mt5_path):
    from transformers import AutoTokenizer

    facts = [make_fact("Aarhus", "leader", "Jacob_Bundsgaard", [("start", "2010")]),
             make_fact("Aarhus", "country", "Denmark")]
    lin = linearise(facts, "cy")
    assert lin.text == ("<2cy> <H> Aarhus <R> leader <T> Jacob Bundsgaard <Q> start <T> 2010 "
                        "<H> Aarhus <R> country <T> Denmark")
    tok = AutoTokenizer.from_pretrained(tiny_mt5_path)
    enc = tok(lin.text, return_offsets_mapping=True)
    roles, fact_ids = token_roles(lin, enc["offset_mapping"], max_facts=8)
    # every token gets the role and fact of the piece its first character belongs to
    for (start, end), role, fact in zip(enc["offset_mapping"], roles, fact_ids):
        if end <= start:
            assert (role, fact) == (ROLE_NONE, 0)
            continue
        first = start + len(lin.text[start:end]) - len(lin.text[start:end].lstrip())
        piece = next(p for p in lin.pieces if p[0] <= first < p[1])
        assert (role, fact) == (piece[2], piece[3])
    assert set(roles) == {ROLE_NONE, ROLE_HEAD, ROLE_RELATION, ROLE_TAIL, ROLE_QUALIFIER}
    assert max(fact_ids) == 2 and roles[-1] == ROLE_NONE  # </s>
    # capped fact index
    _, capped = token_roles(lin, enc["offset_mapping"], max_facts=1)
    assert max(capped) == 1


def test_fact_aware_wrapper_starts_as_the_base_model(tiny_mt5_path):
    from transformers import AutoModelForSeq2SeqLM

    from xapps.fact2text.fact_embeddings import FactAwareSeq2Seq

    torch.manual_seed(0)
    base = AutoModelForSeq2SeqLM.from_pretrained(tiny_mt5_path).eval()
    wrapped = FactAwareSeq2Seq(base, max_facts=4).eval()
    ids = torch.tensor([[5, 6, 7, 8, 1]])
    roles = torch.tensor([[0, 1, 2, 3, 0]])
    facts = torch.tensor([[0, 1, 1, 1, 0]])
    labels = torch.tensor([[9, 10, 1]])
    plain = base(input_ids=ids, labels=labels).logits
    same = wrapped(ids, role_ids=roles, fact_ids=facts, labels=labels).logits
    assert torch.allclose(plain, same, atol=1e-6)
    with torch.no_grad():
        wrapped.role_embeddings.weight.normal_()
    moved = wrapped(ids, role_ids=roles, fact_ids=facts, labels=labels)
    assert not torch.allclose(plain, moved.logits, atol=1e-4)
    moved.loss.backward()  # the role table trains
    assert wrapped.role_embeddings.weight.grad.abs().sum() > 0
    out = wrapped.generate(ids, role_ids=roles, fact_ids=facts, max_new_tokens=4, num_beams=2)
    assert out.shape[0] == 1 and out.shape[1] <= 5


def test_faithfulness_metrics():
    facts = [Fact("Soumili Biswas", "occupation", "actor"),
             Fact("Soumili Biswas", "date of birth", "29 July 2008")]
    assert skeleton("Soumili Biswas") == skeleton("सौमिली बिस्वास")
    assert coverage(facts, "सौमिली बिस्वास का जन्म 29 जुलाई 2008 को हुआ।") == (2, 3)
    assert coverage(facts, "Soumili Biswas, an actor, born 29 July 2008.") == (3, 3)
    # candidates: Biswas, Kolkata, 1999 ("Soumili" and "She" start sentences); two are in
    # no fact
    assert hallucinations(facts, "Soumili Biswas was born in Kolkata in 1999. She acts.") == (
        2, 3)
    s = score([facts], ["Soumili Biswas is an actor."], [["Soumili Biswas is an actor."]])
    assert s.bleu == pytest.approx(100.0) and s.chrf_pp == pytest.approx(100.0)
    multi = score([facts, facts], ["a b c d e", "x y z w v"],
                  [["a b c d e", "q"], ["x y z w v"]])
    assert multi.bleu == pytest.approx(100.0)


def test_language_rate_tells_whether_the_output_is_in_the_target_language():
    from xapps.fact2text.evaluate import language_rate

    welsh = ["Mae maes awyr rhanbarthol Adirondack wedi'i leoli yn Harrietstown, Efrog Newydd.",
             "Hyd rhedfa Maes Awyr Aarhus yw dwy fil saith cant a dau o fetrau."]
    english = ["Adirondack Regional Airport is located in Harrietstown, New York.",
               "The runway of Aarhus Airport is two thousand seven hundred metres long."]
    assert language_rate(welsh, "cy") == 1.0 and language_rate(english, "cy") == 0.0
    assert language_rate(welsh + english, "en") == 0.5
    assert language_rate(welsh, "xx") is None and language_rate([], "cy") is None
    facts = [[Fact("Aarhus Airport", "runway length", "2702.0")]] * 2
    assert score(facts, english, [[t] for t in welsh], "cy").to_dict()["language_rate"] == 0.0


def test_locate_and_relexicalise():
    assert locate("Aarhus Airport", "Hyd rhedfa Maes Awyr Aarhus yw 2702.0.") == \
        "Maes Awyr Aarhus"
    assert locate("84.0", "Mae'r orsaf 84 metr") == "84" and locate("84.0", "184 m") is None
    assert locate("Nowhere", "Mae'r orsaf 84 metr") is None
    cand = [Fact("Aarhus Airport", "runway length", "2702.0")]
    new = [Fact("Adirondack Airport", "runway length", "2003.0")]
    pairs = align(cand, new)
    assert pairs == [(0, 0)]
    text, found, own = relexicalise("Hyd rhedfa Maes Awyr Aarhus yw 2702.0.", cand, new, pairs)
    assert (text, found, own) == ("Hyd rhedfa Adirondack Airport yw 2003.0.", 2, 2)
    # swapped entities are not replaced twice
    cand = [Fact("A", "p", "B")]
    text, _, _ = relexicalise("A met B.", cand, [Fact("B", "p", "A")], [(0, 0)])
    assert text == "B met A."


def _train_examples():
    from xapps.fact2text.data import F2TExample

    return [
        F2TExample([Fact("Aarhus Airport", "runway length", "2702.0")],
                   ["Hyd rhedfa Maes Awyr Aarhus yw 2702.0."], "cy", "t1"),
        F2TExample([Fact("Aarhus", "leader", "Jacob Bundsgaard")],
                   ["Arweinydd Aarhus yw Jacob Bundsgaard."], "cy", "t2"),
        F2TExample([Fact("Aarhus", "leader", "Jacob Bundsgaard"),
                    Fact("Aarhus", "country", "Denmark")],
                   ["Mae Aarhus yn Denmark a'i arweinydd yw Jacob Bundsgaard."], "cy", "t3"),
    ]


def test_retrieval_generator(tiny_xlmr_path, tmp_path):
    gen = RetrievalGenerator(backbone=str(tiny_xlmr_path), k=3).fit(_train_examples())
    assert gen.languages == ["cy"]
    assert set(gen.templates["cy"]) == {"runway length", "leader"}
    out = gen.generate([[Fact("Oslo Airport", "runway length", "3600.0")],
                        [Fact("Bergen", "leader", "Marte Mjøs"),
                         Fact("Bergen", "country", "Norway")],
                        [Fact("Bergen", "leader", "Marte Mjøs"),
                         Fact("Bergen", "mayor since", "2021")]], "cy")
    assert out[0] == "Hyd rhedfa Oslo Airport yw 3600.0."
    assert out[1] == "Mae Bergen yn Norway a'i arweinydd yw Marte Mjøs."
    # the second fact has no counterpart: a plain sentence is appended for it
    assert out[2] == "Arweinydd Bergen yw Marte Mjøs. Bergen mayor since 2021."
    with pytest.raises(InputError, match=r"E191.*'ga'.*cy"):
        gen.generate([[Fact("a", "b", "c")]], "ga")
    gen.save(tmp_path / "gen")
    from xapps.fact2text import load_generator

    again = load_generator(tmp_path / "gen")
    assert again.generate([[Fact("Oslo Airport", "runway length", "3600.0")]], "cy") == out[:1]
    with pytest.raises(InputError, match=r"E192.*no cfg.json"):
        load_generator(tmp_path)


def test_fact2text_component(tiny_xlmr_path, tmp_path):
    gen = RetrievalGenerator(backbone=str(tiny_xlmr_path), k=3).fit(_train_examples())
    nlp = spacy.blank("en")
    nlp.add_pipe("fact2text", config={"target_lang": "cy"})
    nlp.get_pipe("fact2text").initialize(generator=gen)
    doc = nlp.make_doc("Oslo Airport has a long runway.")
    doc._.facts = [{"subject": "Oslo Airport", "predicate": "runway length",
                    "object": "3600.0"}]
    plain = nlp.make_doc("Nothing here.")
    from_oie = nlp.make_doc("Bergen is led by Marte Mjøs.")
    from_oie._.triples = [{"relation": {"role": "REL", "start": 10, "end": 16,
                                        "text": "leader"},
                           "arguments": [{"role": "ARG0", "start": 0, "end": 6,
                                          "text": "Bergen"},
                                         {"role": "ARG1", "start": 17, "end": 27,
                                          "text": "Marte Mjøs"}], "confidence": 0.9}]
    docs = list(nlp.pipe([doc, plain, from_oie]))
    assert docs[0]._.verbalization == "Hyd rhedfa Oslo Airport yw 3600.0."
    assert docs[1]._.verbalization is None
    assert docs[2]._.verbalization == "Arweinydd Bergen yw Marte Mjøs."
    nlp.to_disk(tmp_path / "pipe")
    loaded = spacy.load(tmp_path / "pipe")
    again = loaded.make_doc("x")
    again._.facts = doc._.facts
    assert loaded.get_pipe("fact2text")(again)._.verbalization == docs[0]._.verbalization


def test_cli_train_generate_eval(tiny_xlmr_path, tmp_path):
    from xapps.cli import main

    rows = [{"id": ex.id, "lang": ex.lang, "facts": [f.to_json() for f in ex.facts],
             "texts": ex.texts} for ex in _train_examples()]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    runner = CliRunner()
    res = runner.invoke(main, ["f2t", "train", "--train", str(tmp_path / "train.jsonl"),
                               "--lang", "cy", "--out", str(tmp_path / "gen"), "--backbone",
                               str(tiny_xlmr_path)])
    assert res.exit_code == 0, res.output
    assert "3 examples in cy" in res.output
    (tmp_path / "facts.jsonl").write_text(json.dumps(
        {"id": "q", "facts": [["Oslo_Airport", "runwayLength", "3600.0"]]}) + "\n")
    res = runner.invoke(main, ["f2t", "generate", "--model", str(tmp_path / "gen"), "--facts",
                               str(tmp_path / "facts.jsonl"), "--lang", "cy"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output.splitlines()[0])["text"] == "Hyd rhedfa Oslo Airport yw 3600.0."
    res = runner.invoke(main, ["f2t", "eval", "--model", str(tmp_path / "gen"), "--test",
                               str(tmp_path / "train.jsonl"), "--lang", "cy", "--predictions",
                               str(tmp_path / "pred.jsonl")])
    assert res.exit_code == 0, res.output
    scores = json.loads(res.output)
    preds = [json.loads(line)["text"] for line in open(tmp_path / "pred.jsonl")]
    # each example retrieves itself; relexicalising puts the fact's own (English) name in
    # place of the Welsh one, so only the first differs from its reference
    assert preds == ["Hyd rhedfa Aarhus Airport yw 2702.0.", *[r["texts"][0] for r in rows[1:]]]
    assert scores["n"] == 3 and 50 < scores["bleu"] < 100 and scores["fact_coverage"] == 1.0
    res = runner.invoke(main, ["f2t", "generate", "--model", str(tmp_path / "gen"), "--facts",
                               str(tmp_path / "facts.jsonl"), "--lang", "cy",
                               "--force-entities"])
    assert res.exit_code == 2 and "apply to seq2seq generators" in res.output


def test_entity_lexicon_learns_how_a_language_writes_names():
    from xapps.fact2text.data import F2TExample
    from xapps.fact2text.lexicon import EntityLexicon

    lexicon = EntityLexicon().learn([
        F2TExample([Fact("Soumili Biswas", "occupation", "actor")],
                   ["सौमिली बिस्वास एक अभिनेत्री हैं ।"], "hi"),
        F2TExample([Fact("Amit Biswas", "country", "India")], ["अमित बिस्वास भारत से हैं ।"], "hi"),
        F2TExample([Fact("Denmark", "capital", "Copenhagen")], ["Danmark"], "da")])
    assert lexicon.render("Soumili Biswas") == "सौमिली बिस्वास"
    assert lexicon.render("Biswas Kumar") == "बिस्वास Kumar"  # unseen words stay
    assert lexicon.render("Denmark") == "Denmark"  # same script: left alone
    assert "India" not in lexicon.renderings  # भारत is a translation, not a rendering


def test_cli_trains_a_zero_shot_seq2seq_with_vocabulary_text(tiny_xlmr_path, tmp_path):
    """English examples only, Welsh as unpaired text: the saved generator can write Welsh
    subwords; a malformed --vocab-text names the expected form."""
    from xapps.cli import main
    from xapps.fact2text.seq2seq import Seq2SeqGenerator

    english = [{"id": "e1", "lang": "en", "facts": [["Aarhus", "leader", "Jacob Bundsgaard"]],
                "texts": ["The leader of Aarhus is Jacob Bundsgaard."]}]
    (tmp_path / "train.jsonl").write_text(json.dumps(english[0]) + "\n")
    welsh = [t for ex in _train_examples() for t in ex.texts]
    (tmp_path / "cy.txt").write_text("\n".join(welsh) + "\n\n")
    runner = CliRunner()
    args = ["f2t", "train", "--train", str(tmp_path / "train.jsonl"), "--lang", "en",
            "--kind", "seq2seq", "--backbone", str(tiny_xlmr_path), "--decoder-layers", "1",
            "--steps", "2", "--batch-size", "1", "--out", str(tmp_path / "gen")]
    res = runner.invoke(main, args + ["--vocab-text", f"cy:{tmp_path / 'cy.txt'}"])
    assert res.exit_code == 0, res.output
    gen = Seq2SeqGenerator.load(tmp_path / "gen")
    welsh_ids = {i for t in welsh for i in gen.tokenizer(t)["input_ids"]}
    assert welsh_ids <= set(gen.vocab.keep.tolist())
    res = runner.invoke(main, args + ["--vocab-text", str(tmp_path / "cy.txt")])
    assert res.exit_code == 2 and "LANG:FILE" in res.output
    # decoding options at generation time: force-copy writes the (untrained) model's entities
    (tmp_path / "facts.jsonl").write_text(json.dumps(english[0]) + "\n")
    res = runner.invoke(main, ["f2t", "generate", "--model", str(tmp_path / "gen"), "--facts",
                               str(tmp_path / "facts.jsonl"), "--lang", "cy",
                               "--force-entities", "--beams", "2", "--output",
                               str(tmp_path / "out.jsonl")])
    assert res.exit_code == 0, res.output
    assert "Bundsgaard" in json.loads((tmp_path / "out.jsonl").read_text())["text"]
