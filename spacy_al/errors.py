"""Every message the library raises or warns with, each under a code.

The style is spaCy's: say what happened, show the values, say what to do next.
Codes are grouped by module so that a code tells a reader where to look:

    E0xx corpus (sources, hashing)      E1xx store (database)
    E2xx uncertainty and strategies     E3xx models and updater
    E4xx recipes, loop and simulate     E5xx spans and NER
    E6xx feed and app                   W0xx warnings
"""

from __future__ import annotations


class ErrorsWithCodes(type):
    def __getattribute__(self, code: str) -> str:
        msg = super().__getattribute__(code)
        if code.startswith("__"):  # python system attributes like __class__
            return msg
        return f"[{code}] {msg}"


class Errors(metaclass=ErrorsWithCodes):
    # --- E0xx corpus -----------------------------------------------------
    # (corpus.py adds its messages here)
    E001 = "Can't find the source file {path}: it doesn't exist or isn't a file. Check the path (relative paths start from {cwd})."
    E002 = "Can't tell how to read {path}: its suffix '{suffix}' isn't one of the supported ones ({suffixes}). Rename the file, or name the format with loader= (one of {loaders})."
    E003 = "Unknown loader '{loader}' for {path}. Use one of: {loaders}."
    E004 = "The line isn't valid UTF-8 ({err}). Re-save the file as UTF-8, or use --skip-invalid to skip such lines."
    E005 = "The line isn't valid JSON ({err}): {snippet}. Write one JSON object per line, or use --skip-invalid to skip such lines."
    E006 = "Expected one JSON object per line, got {kind}: {snippet}. If the file holds a single JSON array, convert it to JSON Lines (one object per line); or use --skip-invalid to skip such lines."
    E007 = "The record has no '{field}' (its keys: {keys}). Every task needs a non-empty text string: add one, or use --skip-invalid to skip such lines."
    E008 = "'{field}' must be a string, got {kind}: {snippet}. Store the text as a string, or use --skip-invalid to skip such lines."
    E009 = "'{field}' is empty or only whitespace. Remove the record, or use --skip-invalid to skip such lines."
    E010 = "'{field}' must be a non-empty string, got {kind}: {snippet}. For several labels use 'labels' (a list of strings) or 'cats'; or use --skip-invalid to skip such lines."
    E011 = "'{field}' must be a list of non-empty strings, got {snippet}. Fix the list, or use --skip-invalid to skip such lines."
    E012 = "'cats' must be an object mapping label strings to numbers between 0 and 1, got {snippet}. Fix it, or use --skip-invalid to skip such lines."
    E013 = "'cats' gives '{label}' the value {value}, outside [0, 1]. Scores are probabilities (1.0 true, 0.0 false): fix it, or use --skip-invalid to skip such lines."
    E014 = "'spans' must be a list of span objects, got {kind}: {snippet}. Fix it, or use --skip-invalid to skip such lines."
    E015 = "'spans' item {i} is {snippet}, but a span needs integer 'start' and 'end' with 0 <= start <= end <= {n_chars} (the text's length) and a non-empty string 'label'. Fix the span, or use --skip-invalid to skip such lines."
    E017 = "'meta' must be an object, got {kind}: {snippet}. Fix it, or use --skip-invalid to skip such lines."
    E018 = "'meta.cost' must be a positive number (the relative effort of annotating the task), got {snippet}. Fix or remove it, or use --skip-invalid to skip such lines."
    E019 = "'{field}' must be an integer hash, got {snippet}. Remove it to have it recomputed, or use --skip-invalid to skip such lines."
    E020 = "The CSV file has no column '{column}' ({option}={column!r}); its columns are: {columns}. Pass {option}= with the name of the column that holds the {what}."
    E021 = "The CSV row has {n} fields but the header has {n_header}. Quote fields that contain the delimiter or a line break, or use --skip-invalid to skip such lines."
    E022 = "Can't read {path} as a DocBin ({err}). Pass a .spacy file written with DocBin.to_disk, or choose another loader= (one of {loaders})."
    E023 = "label_sep can't be an empty string. Pass None (one label per cell) or the string between labels in a cell, e.g. ',' or '|'."

    # --- E1xx store ------------------------------------------------------
    # (store.py adds its messages here)
    E101 = "Can't open the answer database {url}: {err}. Pass an SQLite file path (e.g. spacy_al.db) or an SQLAlchemy URL such as sqlite:///answers.db or postgresql+psycopg://user@host/dbname; PostgreSQL needs psycopg (pip install 'spacy-al[postgres]')."
    E102 = "Can't find the dataset '{name}' in the database {url}. Its datasets are: {available}. Check the name (python -m spacy_al stats lists them), or annotate or import (db-in) into it first."
    E103 = "A {what} name must be a non-empty string of at most {max} characters, got {snippet}. Pass a short name such as 'news_cats' or 'alice'."
    E104 = "An answer must be a dict (a task with its 'answer'), got {kind}: {snippet}. Pass a list of task dicts."
    E105 = "'text' must be a non-empty string unless the answer carries an '_input_hash', got {snippet}. Add the task's text."
    E107 = "'label' must be a string, got {kind}: {snippet}. For several chosen labels use 'accept' (a list of them)."
    E108 = "'accept' must be a list of the chosen labels or option ids (strings or integers), got {snippet}. Fix the list, or leave 'accept' out."
    E109 = "'{field}' must be an integer hash between -2**63 and 2**63 - 1, got {snippet}. Remove it to have it recomputed."
    E110 = "The value under '{field}' can't be stored as JSON ({err}). Convert it to strings, finite numbers (no NaN or infinity), booleans, lists or dicts."
    E111 = "model_version must be an integer or None, got {snippet}. Pass the version of the model that suggested the answers, or None."
    E113 = "{name} must be a positive integer, got {snippet}."
    E114 = "Couldn't write {n} answers to dataset '{dataset}' after {attempts} attempts: they kept conflicting with concurrent writes ({err}). Nothing of the batch was written; add it again."
    E115 = "Dataset meta must be a dict that can be stored as JSON, got {snippet} ({err}). Pass a dict of strings, numbers, lists and dicts."
    E116 = "since_id must be an integer answer id or None, got {snippet}. Pass the '_id' of the last answer you have seen."
    E117 = "Answer {i} of the batch for dataset '{dataset}' is invalid: {err} Nothing of the batch was written; fix that answer and add the batch again."
    E118 = "Record {n} of {path} (counting records, not lines) isn't a valid answer: {err} Nothing was imported; fix the record, or pass --skip-invalid to skip it."

    # --- E2xx uncertainty and strategies ---------------------------------
    # (uncertainty.py and strategies.py add their messages here)
    E201 = "Expected probabilities of shape (n, n_labels), one row per example and at least one label column, but got an array of shape {shape}. For a single example pass probs[None, :]."
    E202 = "Expected {what} of shape ({axis}, n, n_labels), with at least one {item} and one label column, but got an array of shape {shape}. Stack one (n, n_labels) probability matrix per {item} with numpy.stack."
    E203 = "Probabilities must be finite numbers between 0 and 1, but {n_bad} of {size} values aren't (e.g. {example}). Pass the model's probabilities (softmax or sigmoid outputs), not logits."
    E204 = "Rows of exclusive probabilities must sum to 1, but {n_bad} row(s) don't (row {row} sums to {total:.4f}). For independent labels (textcat_multilabel) use the multilabel measures: get_measure(name, multilabel=True)."
    E205 = "Unknown uncertainty measure '{name}'. Valid {kind} measures: {names}. The committee measures ({committee}) and bald take stacked member probabilities: import them from spacy_al.uncertainty."
    E210 = "Candidates.{field} must have shape {expected}, one row per score, but got shape {shape}. Build every per-candidate array in the same order as the scores."
    E211 = "Candidate scores must be finite, but {n_bad} of {m} are NaN or infinite. Check the probabilities given to the uncertainty measure."
    E212 = "Candidates has {n_labels} labels {labels}, but probs has {n_cols} columns. Pass one label per column of probs, in the same order."
    E213 = "Candidates.vectors contains NaN or infinite values. Replace them (e.g. with numpy.nan_to_num) or use another document representation."
    E214 = "Candidate costs must be finite and greater than 0, but {n_bad} of {m} aren't (e.g. {example}). Use the number of tokens or another positive effort estimate, or leave costs as None for equal costs."
    E215 = "Candidates.label_counts must be finite counts >= 0, but got {values}. Pass the number of labelled examples per label so far (zeros at the start)."
    E216 = "The number of examples to query must be an integer >= 0, but got n={n!r}."
    E217 = "Can't select n={n} examples from a pool of {size} candidates. Pass a lower n (at most {size}), or add examples to the pool."
    E218 = "Invalid option {option}={value!r} for strategy '{strategy}': it must be {requirement}."
    E219 = "The strategy '{strategy}' needs Candidates.{field}, but it is None. Pass {field} when building Candidates, or choose a strategy that doesn't need it, e.g. spacy_al.top_k.v1."
    E220 = "The strategy '{strategy}' weights scores, so they must be >= 0, but {n_bad} are negative (minimum {minimum}). Use a measure from spacy_al.uncertainty, which are all >= 0, or shift your scores."
    E222 = "Unknown strategy '{name}'. Short names: {aliases}. Registered strategies: {names}. Register your own with @spacy_al.registry.strategies('NAME.v1')."
    E223 = (
        "Unknown option(s) {options} for strategy '{name}'. Its options are: {valid}."
    )

    # --- E3xx models and updater -----------------------------------------
    # (models.py adds its messages here)
    E309 = "A committee needs at least two members, got {n}. Use --committee-size 3 (or more), or a single-model measure such as margin."
    E301 = "Unknown architecture '{architecture}'. Choose one of {valid}: 'bow' (fast bag-of-words, the default) or 'ensemble' (bag-of-words plus a CNN, better quality, about 10x slower)."
    E302 = "Can't make a blank pipeline from '{base}': {err}. Use blank: followed by a language code spaCy knows, e.g. blank:en or blank:de."
    E303 = "Can't load the pipeline '{base}': it is neither an installed package nor a pipeline directory. Pass blank:LANG (e.g. blank:en) for a blank pipeline, the name of an installed package, or the path of a directory written by nlp.to_disk."
    E304 = (
        "No labels given. Pass the labels with --label, e.g. --label SPORTS,POLITICS."
    )
    E305 = "An exclusive text classifier needs at least two labels, got {labels}. Add the other label (e.g. --label {labels[0]},OTHER) or use a multilabel classifier (--multilabel), which can learn a single label."
    E306 = "The base pipeline's component '{name}' doesn't know the labels {missing} (it has {labels}). spaCy can't add labels to a trained text classifier: use those labels, or add a new component with --component NEW_NAME."
    E307 = "The pipeline has no text classifier (its components: {pipes}). Build one with spacy_al.models.build_textcat, or pass a pipeline with a textcat or textcat_multilabel component."
    E308 = "No checkpoint at {path}: state.json is missing. Point to a directory written by Updater.save, or start without --resume."
    E316 = "spacy_al.TextCatBOW.v1 can't make n-grams of the token attribute '{attr}': it isn't one of spaCy's attributes (spacy.attrs.IDS). Use LOWER (the default), ORTH, NORM or LEMMA."
    E317 = "spacy_al.TextCatBOW.v1 needs ngram_size >= 1 and length >= 1, got ngram_size={ngram_size}, length={length}. Fix them in the model config (the defaults are 2 and 262144)."

    # --- E4xx recipes, loop and simulate ---------------------------------
    # (loop.py, simulate.py and recipes add their messages here)
    E411 = "Record {i} of {what} has no gold label: simulate replays gold labels as the annotator, so every record needs 'label', 'labels', 'cats' or an accepted choice. Remove unlabelled records, or use them as a pool with textcat.teach instead."
    E412 = "Some records have no label or several labels, which an exclusive classifier can't learn. Pass --multilabel, or give every record exactly one label."
    E410 = "The positive label '{label}' isn't one of the labels {labels}. Pass --positive-label with one of them (e.g. spam for a spam/ham corpus), or leave it out for macro F1."
    E408 = "The loop was given a store but no dataset name. Pass dataset='NAME' (the recipe's DATASET argument) so that answers are saved under it."
    E409 = "The measure '{measure}' needs a committee of models, but the updater serves a single model. Build the updater with spacy_al.models.Committee (the recipes do this when the strategy is a committee measure)."
    E403 = "Unknown committee measure '{measure}'. Choose one of {valid}."
    E404 = "BALD needs a model with dropout, and this one has none (the 'bow' architecture has no dropout layers, so every Monte-Carlo sample is identical). Use --arch ensemble with --measure bald, or a measure such as margin or entropy."
    E405 = "A pattern needs a non-empty string 'label' and either a 'pattern' (a phrase string or a list of token attribute dicts) or a 'regex'. Fix or remove this line of the patterns file."
    E406 = "The regex of this pattern doesn't compile: {err}. Fix the regular expression (JSON needs backslashes doubled: \\\\b for \\b)."
    E407 = "The token pattern is invalid: {err}. See https://spacy.io/usage/rule-based-matching for the token pattern format."
    E402 = "Unknown label '{label}' in {where}. The model's labels are {labels}. Answers must use the labels the recipe was started with; start it with --label covering this label, or correct the answer."
    E401 = "Can't load the recipe file {path}: it doesn't exist or isn't a Python file. Pass -F with the path to a .py file that defines recipes with @spacy_al.registry.recipe."

    # --- E5xx spans and NER ----------------------------------------------
    # (spans.py and ner_scores.py add their messages here)
    E530 = "Unknown entity label '{label}' in {where}. The model's labels are {labels}. Answers must use the labels the recipe was started with (they are fixed while the model is shared): restart the recipe with --label covering it, or correct the answer."
    E531 = "Unknown NER measure '{measure}' in the strategy '{name}'. NER measures: {measures}. Use e.g. --strategy mnlp, token-entropy, entity, random, or STRATEGY:MEASURE such as diverse:mnlp."
    E532 = "The pipeline has no entity recognizer (its components: {pipes}). Build one with spacy_al.ner.model.build_ner, or pass a pipeline with a 'ner' or 'beam_ner' component."
    E533 = "Unknown NER architecture '{factory}'. Choose one of {valid}: 'beam_ner' (beam search, calibrated entity probabilities, the default) or 'ner' (greedy, cheaper, scored by per-step entropy)."
    E534 = "beam_width must be an integer >= 1, got {beam_width!r}. Use 4 to 8 for beam scores, or 1 for the greedy fallback (per-step entropy)."
    E535 = "No entity labels given. Pass them with --label, e.g. --label PERSON,ORG, or give a patterns file whose labels should be used."
    E536 = "The base pipeline's component '{name}' is a {cls}, not an entity recognizer. Pass --component with the name of a 'ner' or 'beam_ner' component, or a new name to add one."
    E537 = "Record {i} of {what} has no 'spans': simulate ner replays gold entities as the annotator, so every record needs a 'spans' list (empty when the text has no entity). Remove such records or add their spans."
    E538 = "Unknown NER loop mode '{mode}'. Choose one of {valid}: 'teach' (accept/reject single entities), 'correct' (fix the model's analysis) or 'manual' (mark spans from scratch)."
    E539 = "The patterns file's labels {unknown} aren't among the labels {labels}. Add them to --label, or remove those patterns: the label set is fixed when the model starts."
    E540 = "An entity pattern needs a non-empty string 'label' and a 'pattern': a phrase string or a list of token attribute dicts (as for spaCy's EntityRuler), got {snippet}. Fix or remove this line of the patterns file."
    E541 = "The entity pattern is invalid: {err}. See https://spacy.io/usage/rule-based-matching#entityruler for the pattern format."
    E543 = "The checkpoint at {path} holds a {saved} model, but a {wanted} model was asked for. Use a separate dataset (each dataset has its own checkpoint), or delete the checkpoint to start afresh."
    E545 = "The checkpoint of dataset '{dataset}' at {path} was trained with the labels {saved}, but --label asks for {labels}. The label set of a model is fixed: use the same labels, or annotate into a new dataset (or delete the checkpoint to start a new model from the stored answers)."
    E546 = "No texts to train vectors on: the pool is empty. Give a source with texts, or --vectors none."
    E547 = "Unknown floret model '{model}'. Choose 'cbow' or 'skipgram'."
    E548 = "Unknown --vectors '{vectors}'. Choose 'auto' (floret vectors of the pool's texts when the pool has at least {min_tokens} tokens, or the --base pipeline's own vectors), 'pool' (always train them), 'base' (the --base pipeline's vectors only) or 'none'."
    E1230 = "Nothing to pretrain on: none of the pool's {n} texts has at least {min_length} tokens (shorter texts are skipped, as spacy pretrain does). Give a source with longer texts, or don't pretrain (--pretrain none)."
    E1231 = "Can't add pretrained weights as '{name}': the pipeline already has a component of that name ({pipes}). Pretraining is for a new ner over a base without a '{name}' component; with a pipeline that has one, don't pretrain (--pretrain none)."
    E1232 = "Unknown --pretrain '{pretrain}'. Choose 'auto' (pretrain the ner's tok2vec on the pool's texts when the pool has at least {min_tokens} tokens and the model is new), 'pool' (always) or 'none'."
    E1233 = "The base pipeline already has an entity recognizer '{name}', with weights of its own: pretrained tok2vec weights are for a new ner only. Use --pretrain none with this --base, or a base without a ner."
    E501 = "UTF-16 offset {offset} falls between the two halves of a surrogate pair (the character {char!r} at code point offset {index}), so it names no character boundary in the text. Browsers count astral characters such as emoji as two code units; send offsets that point before or after the whole character."
    E502 = "UTF-16 offset {offset} is outside the text, which is {length} UTF-16 code units long ({n_chars} characters). Check that the offset was computed on the same text."
    E503 = "Span {i} is malformed: {span!r}. Each span must be a dict with integer 'start' and 'end' (character offsets into 'text', end exclusive) and a string 'label'."
    E504 = "Span {i} ({start}, {end}, '{label}') starts at {start}, before the start of the text. Character offsets are 0-based and can't be negative."
    E505 = "Span {i} ({start}, {end}, '{label}') ends at {end}, past the end of the text ({length} characters; the span would cover {text!r}). Check that the offsets are Python character offsets into this 'text'; offsets from a browser are UTF-16 code units and need spacy_al.spans.utf16_spans_to_char first."
    E506 = "Span {i} ({start}, {end}, '{label}') is empty: start must be less than end (end is exclusive). Remove the span or fix its offsets."
    E507 = "Span {i} ({start}, {end}, '{label}') covers only whitespace ({text!r}). Remove the span or move it onto the words it should mark."
    E508 = "Span {i} ({start}, {end}, {text!r}) has the label '{label}', which isn't one of the known labels: {labels}. Fix the label, or add it to the label set."
    E509 = "Spans overlap: span ({start1}, {end1}, '{label1}') {text1!r} and span ({start2}, {end2}, '{label2}') {text2!r} share characters {start2}-{overlap_end}. Named entities can't overlap; keep one of them (use spancat for overlapping spans)."
    E510 = "Span ({start}, {end}, '{label}') {text!r} doesn't align with the tokens: {detail}. The nearest token boundaries are {starts} for the start and {ends} for the end, e.g. ({start_lo}, {end_hi}) {expanded!r}. Move the span onto token boundaries, or pass the text's own 'tokens' so the tokenization matches the annotation."
    E511 = "The task has no text: expected a string with some non-whitespace characters under 'text', got {value!r}."
    E512 = "The task's 'tokens' don't match its text: token {i} {token!r} isn't found after character {position} (or non-whitespace text lies between tokens). Fix the tokens, drop them, or pass a pipeline (not a bare Vocab) so the text can be tokenized."
    E513 = "Spans ({start1}, {end1}, '{label1}') {text1!r} and ({start2}, {end2}, '{label2}') {text2!r} both cover token {token} {token_text!r} after alignment to tokens. Fix the offsets so each token belongs to at most one entity."
    E514 = "Span ({start}, {end}, '{label}') {text!r} is both accepted and rejected in this task. spaCy's ner can't learn from contradicting answers (E868); keep one answer."
    E515 = "Unknown answer {answer!r} for {what}. Expected 'accept' or 'reject'; leave out tasks answered 'ignore' before building training examples."
    E516 = "UTF-16 offset must be an integer, got {offset!r}. Offsets from a browser are JavaScript string indices."
    E520 = "Component '{name}' is a {cls}, not a transition-based entity recognizer (factory 'ner' or 'beam_ner'). NER scores need one; for spancat, score with its predict() instead."
    E521 = "Component '{name}' has no entity labels yet, so it can't be scored. Initialize or train it first (nlp.initialize(...) with examples, or ner.add_label(...) and nlp.initialize())."
    E522 = "beam_width must be an integer of at least 2 for beam scores, got {beam_width!r}. Use greedy_scores(ner, docs) (or beam_width=1 in score_docs) for the greedy fallback."
    E523 = "No component '{name}' in the pipeline. Available components: {names}."
    E524 = "Unknown measure '{measure}'. Choose one of: {measures}."
    E525 = "Component '{name}' listens to an upstream tok2vec, but {n_missing} of the {n_docs} non-empty docs have no tensor: they didn't go through the earlier pipeline components, and the ner would silently predict from zero vectors. Use spacy_al.ner_scores.score_docs(nlp, texts_or_docs, component='{name}'), which runs those components first, or pass docs from nlp.pipe(...)."
    E526 = "beam_density must be a number in [0, 1), got {beam_density!r}. It is the minimum probability ratio between the last and first candidate kept in the beam; 1e-4 is a good default."
    E527 = "min_prob must be a number in [0, 1], got {min_prob!r}."

    # --- E6xx feed and app -----------------------------------------------
    # (feed.py adds its messages here)
    E614 = "An NER answer needs 'text' (a string) and 'spans' (a list of {{'start', 'end', 'label'}} dicts, character offsets), got spans {snippet}. Answer the task Feed.next_task returned, editing only 'spans' and 'answer'."
    E615 = "The answer's spans don't fit its text or labels: {err}"
    E616 = "An answer in the 'ner' view (ner.teach) is about exactly the one suggested span, got {n} spans. Send the task back unchanged except for 'answer'; use ner.correct to edit spans."
    E601 = "An annotator name must be 1 to {max} printable characters, got {snippet}. Open the app as http://HOST:PORT/?session=NAME with a short name such as 'alice'."
    E602 = "'{name}' isn't one of the annotators allowed on this server ({allowed}). Open the link printed for you when the server started (it holds your name and token), or ask whoever started it to add you with --annotators."
    E603 = "The answer is for an example that isn't in this server's pool (input key {input_hash}). Answer a task that Feed.next_task returned, unchanged except for 'answer' and 'accept'."
    E605 = "'accept' must be a list of labels from {labels}, got {snippet}. Choose among the labels the recipe was started with (--label)."
    E606 = "{name} must be {requirement}, got {value!r}."
    E607 = "Can't find the labelling app (app.py); looked in: {places}. Reinstall spacy_al (pip install --force-reinstall spacy-al), or run it from a source checkout."
    E608 = "The labelling app needs its recipe in the environment variable {var}, which is missing or isn't valid JSON ({err}). Start the app with python -m spacy_al RECIPE ... (for example python -m spacy_al demo), not with streamlit run app.py."
    E609 = "Unknown recipe '{name}'. Available recipes: {names}. For a recipe in your own file, pass -F path/to/recipe.py."
    E610 = "The recipe '{name}' returned {kind}, not a components dict with a 'view_id', so there is nothing to label in the app. Only interactive recipes (textcat.teach, textcat.correct, textcat.manual, ...) start the app."
    E611 = "Can't listen on {host}:{port}: {err}. Stop whatever uses the port, or pass another --port (and a --host this machine has)."
    E612 = "The labelling server stopped with exit code {code} before it was ready at {url}. Its output above says why."
    E613 = "The view '{view_id}' has no renderer in the labelling app; it has renderers for: {views}. Use a recipe whose view the app knows, or add a render function for this view to app.py."

    # --- E7xx benchmarks ---------------------------------------------------
    E712 = "No record of {path} has a gold label. bench speed replicates a labelled corpus (records with 'label', 'labels' or 'cats'), e.g. --corpus ../shared/corpora/sms_spam."
    E713 = "Can't make a pool of {n} texts from {n_texts} distinct texts: pass at least one text and a pool size of at least 1 (--pools 10000,100000)."
    E714 = "bench speed needs at least one answer and one annotator, got answers={answers!r} and annotators={annotators!r}. Pass e.g. --answers 500 --annotators 5."
    E715 = "The feed served no question within {timeout} s of asking. The selector may have failed (see Feed.stats()['error']) or the machine is overloaded; rerun with a smaller pool."
    E716 = "measure_update needs at least one batch of at least one answer, got batches={batches!r} and batch_size={batch_size!r}."
    E717 = "Only {n} labelled records for the '{model}' update benchmark, which needs {need}. Use a corpus with more gold labels (or gold 'spans' for ner), or fewer batches."
    E718 = "The updater's serving version went from {before} to {after} after one update, not up by one: the benchmark can't tell when the new model was served."
    E719 = "Unknown model '{model}' for the update benchmark. Choose one of: linear, bow, ensemble, ner."
    E720 = "measure_scoring needs repeats >= 1 and n_docs >= 1, got repeats={repeats!r} and n_docs={n_docs!r}."
    E721 = "Measuring the start-up of a pool of {pool_size} texts in a fresh process failed: {err}. Run it alone to see the whole error, or try a smaller --big-pools size."
    E722 = "Can't find {path}, which bench speed reads: --corpus must be a directory holding train.jsonl with gold labels (and, for the NER update figures, --ner-corpus one with gold spans)."
    E724 = "'{value}' isn't a think time. Pass --think MIN,MAX: two numbers of seconds with 0 <= MIN <= MAX, e.g. --think 0,0.05 or --think 1,3."
    E723 = "'{value}' isn't a list of pool sizes. Pass comma-separated whole numbers of at least 1, e.g. --pools 10000,100000."
    E700 = "Unknown peer '{name}'. Choose among: {names}."
    E701 = "The peer '{name}' needs the Python package '{module}', which can't be imported ({err}). Install the benchmark extras with pip install -e .[bench] (or pip install {pip_name}), or leave the peer out of --peers."
    E702 = "Example {i} of {what} has {n} gold labels ({gold}); the peers are single-label classifiers and need exactly one per example. Benchmark multi-label data with python -m spacy_al simulate instead."
    E703 = "Example {i} of {what} has the gold label '{label}', which isn't one of the labels {labels}. Pass every label that occurs in the data."
    E704 = "seed_indices must be one or more distinct integers in [0, {n}) (positions in the pool of {n} texts), got {snippet}. Use spacy_al.benchmarks.peers.seed_indices(n_pool, seed_size, seed), the seed set simulate uses."
    E705 = "{name} must be an integer of at least 1, got {value!r}."
    E706 = "{what} has {n_texts} texts but {n_gold} gold label lists; pass one list of gold labels per text, in the same order."
    E707 = "Unknown benchmark '{what}'. Choose one of: {whats} (e.g. python -m spacy_al bench labels --corpus DIR)."
    E708 = "Can't find {path}. --corpus must be a directory holding train.jsonl (the pool) and test.jsonl (the evaluation set), as in ../shared/corpora/sms_spam."
    E709 = "Nothing to benchmark: --strategies names no spacy_al strategy. Pass at least one, e.g. --strategies margin,random."
    E710 = "Unknown task '{task}' for bench labels. Choose one of: {tasks}."
    E711 = "bench {what} needs --corpus DIR: a directory holding train.jsonl and test.jsonl, e.g. python -m spacy_al bench {what} --corpus ../shared/corpora/sms_spam."

    # --- E75x agreement, stopping, durability
    E750 = "Answer {i} can't be used for agreement: it has no '{field}' ({snippet}). Agreement works on answers read from the store (Store.get_answers), which carry '_input_key' and '_annotator_id'; set both (or give the answer its 'text') on answers from elsewhere."
    E751 = "No rated answers by the annotator '{name}'. The annotators with accept or reject answers are: {names}. Check the name ('_annotator_id' of the answers)."
    E752 = "Unknown consensus reference '{reference}'. Choose one of {references}: 'others' compares each annotator with the majority of the other annotators, 'all' with the majority of everyone."
    E753 = "{what} needs a count table, a 2-D array of non-negative whole numbers with one row per example and one column per category (how many annotators chose it), got {snippet}. Build one from answers with spacy_al.team.agreement.rating_table(answers).counts."
    E754 = "Cohen's kappa compares two raters on the same items, but got {n_first} ratings from the first and {n_second} from the second. Pass both raters' ratings of the same items, in the same order."
    E755 = "'{name}' must be {requirement}, got {value!r}."
    E756 = "Predictions must be a non-empty array of whole-number label ids: 1-D with one label id per example, or 2-D with one row of 0/1 label flags per example (multilabel). Got shape {shape} and dtype {dtype}. Pass the argmax of the model's scores on the stop set."
    E757 = "The predictions cover {n} examples, but the previous model's covered {n_prev}. Stabilizing predictions compares successive models on one fixed stop set: predict on the same examples, in the same order, every time."
    E758 = "Can't restore the stopping signal from the saved state ({err}). Pass a dict written by StabilizingPredictions.to_dict, or start a new signal."
    E759 = "Bad stopping-signal setting {flag}: {err} The stop signal compares successive models' predictions on --stop-set-size pool examples and says stop once the mean kappa of the last --stop-window updates reaches --stop-threshold. Pass an allowed value, or leave the flag out for its default (shown by --help)."
    E760 = "The value at {where} can't be stored: {why}. Records must hold JSON values (strings of valid Unicode, finite numbers, lists and objects with string keys). Fix the record, or use --skip-invalid to skip such lines."
    E761 = "'{field}' contains a NUL character: {snippet}. A label can't contain NUL (the answer database can't store it): remove the character, or use --skip-invalid to skip such lines."
    E762 = "The CSV row can't be parsed ({err}). Check its quotes and line ends: lines must end with \\n or \\r\\n (a lone \\r, as in old Mac files, ends no line). Fix the row, or use --skip-invalid to skip such lines."
    E763 = "A {what} name can't be stored: {why} ({snippet}). Names are kept in text columns, which can't hold NUL or half surrogate pairs on every database; pick a name without them, such as 'news_cats' or 'alice'."
    E764 = "'label' can't be stored: {why} ({snippet}). The label is kept in a text column, which can't hold NUL or half surrogate pairs on every database; use the label as the recipe gave it."
    E765 = "The key '{field}' of the answer can't be stored: answer keys must be strings of valid Unicode (no half surrogate pairs). Rename or remove the key."

    # --- E80x speed
    E800 = "Can't find the session builder '{name}'. Name an importable function as 'module:function' (e.g. 'spacy_al.benchmarks.speed:textcat_session'), taking (pool path, database path, labels) and returning a recipe's components."
    E801 = "The pool was still being read {timeout} s after the session started. Pass a longer timeout, or a smaller pool."

    # --- E84x durability: checkpoints, leases, the JSON API ---------------
    E840 = "The model checkpoint {path} can't be read ({err}); it may have been cut short by a crash or a full disk. Trying the previous checkpoint, if there is one."
    E841 = "No readable model checkpoint at {path}: starting a new model and learning every stored answer again (nothing answered is lost). Delete the folder to silence this warning."
    E842 = "Unknown annotator or wrong token. Use the name and token printed for you when the server started (--annotators)."
    E843 = "No such path. The API has: {routes}."
    E844 = "{method} isn't allowed on {path}: use {wanted}."
    E845 = "A GET request can't have a body: pass annotator and token in the query string (?annotator=NAME&token=TOKEN)."
    E846 = "The request needs a Content-Length header (at most {max} bytes); chunked bodies aren't accepted."
    E847 = "The request body has {size} bytes, more than the {max} allowed. Send one task per request."
    E848 = 'The request body must be one JSON object in UTF-8, got {err}. Send e.g. {{"annotator": "alice", "token": "..."}}.'
    E849 = "The server failed to handle the request ({kind}). Nothing was stored unless a later request says so; try again, and look at the server's output."
    E850 = "'wait' must be a number of seconds (0 to {max})."
    E851 = "'task' must be the task /next returned (a JSON object), with 'answer' set to accept, reject or ignore."
    E852 = "Can't read or write the annotators' tokens at {path} ({err}). Check the folder's permissions, or delete the file to make new tokens."

    # --- E86x-E87x consensus and review
    E860 = "overlap must be an integer >= 1 (the number of annotators asked about each example), got {value!r}. Pass --overlap 2 or more to learn only from examples the annotators agree on."
    E861 = "Nothing to review in {inputs}: {reason}. Review needs the answers of two or more annotators on the same examples (start the recipe with --overlap 2 or more), or pass --all to review every example with several answers."
    E862 = "The review answer has 'accept' {snippet}, but an exclusive model takes exactly one label. Choose one of {labels}."
    E863 = "Can't review {inputs} into '{dataset}': the review dataset must be another dataset than the ones it reviews. Name a new dataset, e.g. '{suggestion}'."
    E864 = "The datasets to review mix tasks ({tasks}). Review text classification and NER datasets separately."
    E865 = "The reviewed span ({start}, {end}, '{label}') doesn't start and end on token boundaries of the text. Select whole tokens in the review app (or align the character offsets to the task's 'tokens')."

    # --- E90x-E91x contracts between the parts (protocols, strategies' needs)
    E900 = "NERModel.update got per-target weights, but a ner's loss isn't weighed per example. Pass weights=None (NERModel.balance_weights gives None; keep the updater's class_weight at 0 for NER)."
    E901 = "Strategy '{name}' declares needs {needs}, but a strategy can only need: {valid}. Declare them with @spacy_al.strategies.needs(...) on the registered function."

    # --- E92x-E93x sessions, checkpoints and the launcher
    E920 = "Refusing to remove or rename {path}: it isn't inside the models folder {root}, the only folder spacy_al ever removes anything from. This is a bug: please report it with the dataset name."

    # --- E94x the labelling app
    E945 = "The span editor's answer isn't for the example shown (got {snippet}): nothing was stored. Answer the example on the page again; if this repeats, reload the page."

    # --- E95x benchmarks
    E950 = "Can't find '{name}' of the bundled demo corpus; looked in: {places}. Reinstall spacy_al (pip install --force-reinstall spacy-al), or run it from a source checkout."
    E951 = "measure_ner_scoring needs repeats >= 1 and epochs >= 1, got repeats={repeats!r} and epochs={epochs!r}."
    E952 = "The NER scoring benchmark needs at least 2 training records and 1 record to score with gold 'spans' (and at least one entity label), got {n_train} and {n_docs}. Pass --ner-corpus a directory whose train.jsonl and test.jsonl carry gold spans, e.g. ../shared/corpora/wnut17."
    E955 = "The durability trial needs at least 1 server and at least one annotator per server, got {servers} servers and {annotators} annotators."
    E956 = "The train kill trials need at least 1 trial and a kill share between 0 and 1, got trials={trials!r} and write_share={write_share!r}."
    E957 = "The complete 'train' run of the kill trials failed (exit status {code}), so there is no model to protect: {tail}"
    E958 = "'bench durability' can't run '{run}': {reason}"

    # --- E96x-E97x identity, the answer format, import and export
    E960 = (
        "'{field}' must be one of 'accept', 'reject' or 'ignore', got {snippet}. {fix}"
    )
    E961 = "The answer's '_input_key' {given} isn't the key of its content ({key}): its text was changed after the task was served, or the key belongs to another task. Send the task as it was served, or remove '_input_key' to have it recomputed."
    E962 = "Two different inputs share the identity key {key} in dataset '{dataset}': {first} and {second}. Nothing of the batch was written. This is a 64-bit hash collision (about one in 10^9 for 150,000 texts): please report it with both texts; change one text (e.g. a trailing space) to store it."
    E963 = "Two different texts in the source share the identity key {key}: {first} and {second}. This is a 64-bit hash collision (about one in 10^9 for 150,000 texts): please report it with both texts; change one of them (e.g. a trailing space) to keep both."
    E964 = "Can't upgrade the answers table of {url} to identity keys: {err}. The database is unchanged; open it with the spacy_al version that created it, or restore it from a backup."
    E965 = "Answer {id} of dataset '{dataset}' can't be used: {err}"
    E966 = "Can't save the pipeline to {path}: {err}. The previous pipeline at {path} (if any) is unchanged."
    E967 = "Name the datasets to train on: --textcat NAMES and/or --ner NAMES."
    E968 = "No usable answers in {names}: label some examples first."
    E969 = "No gold answers to evaluate on ({n} targets, all partial or too few). Lower --eval-split or add accept/choice answers."
    E970 = "No usable NER answers in {names}: annotate some texts first."
    E971 = "No entity label in {names}: accept some entities first."
    E972 = "Too few NER answers ({n}) to hold any out."
    E973 = "{path} exists and isn't a spaCy pipeline (no config.cfg or meta.json), so it won't be replaced. Pass a new folder, or the folder of an earlier pipeline."

    # --- E98x-E99x the JSON API and serving across processes
    E980 = "'{who}' holds no lease on the example {input_hash}: it was never served to them, or their lease ended ({seconds:g} s without an answer or a page refresh) and it may have gone to someone else. Ask for a task again (POST /next) and answer the one it returns."
    E981 = "In the 'ner' view (ner.teach) an answer is about the span that was served, so its spans can't change (got {snippet}). Send only 'answer'; to edit spans, use ner.correct."
    E982 = "The query string has more than {max} fields. /stats takes only annotator and token: /stats?annotator=NAME&token=TOKEN."
    E983 = "The request wasn't received whole within {seconds:g} s. Send each request at once; the connection is closed."
    E984 = "Refused a connection from {client}: {reason}"
    E985 = "Dataset '{name}' is in use: {leases} live lease(s) and {servers} labelling server(s) seen in the last {seconds:g} s. Stop its servers first (their leases then end within the lease time), or pass --force to delete it under them."
    E986 = "Dataset '{name}' was deleted from the database while this server was labelling it: nothing more is served or stored. Restart the recipe to create it again."
    E987 = "Reading the source stopped at a malformed record, so labelling stops too (the texts after it were never read): {err} Fix or remove the record and start again, or start with --skip-invalid to skip such records and count them. Every answer given so far is stored."
    E988 = "'_input_key' must name the task the server gave (the integer /next returned with it), got {snippet}."
    # --- E44x-E47x label efficiency
    E440 = "{name} needs n_features >= 1 (2 with words), 1 <= min_n <= max_n and C > 0, got n_features={n_features}, min_n={min_n}, max_n={max_n}, C={C}. Fix the model block of the config."
    E441 = "The tuning run reads only TRAIN: it carves its dev split ({dev_share:.0%}) from {n} training records, which leaves too few ({n_dev} dev, {n_train} pool). Use a bigger corpus or a smaller --dev-share."
    E442 = "--split must be 'dev' (tune: a dev split carved from train.jsonl, seeds from 0; test.jsonl is never read) or 'test' (report on test.jsonl with seeds from {report_seed}), got '{split}'."
    E443 = "A bootstrap interval needs paired values for the same seeds, got {n_a} and {n_b} value(s)."
    E444 = "The text classifier '{component}' is trained by gradient steps, not refit: only a pipeline built with --arch linear (spacy_al.TextCatCharLinear.v1) has fit()."
    E445 = "Unknown variant '{variant}' in strategy '{strategy}': after a strategy's name, '+' takes {variants} (e.g. margin+diverse-seed)."
    E446 = "simulate --split {split} {problem}: --split test scores on --eval EVAL.jsonl (report with seeds never tuned on, e.g. --first-seed 100); --split dev scores on a dev set carved from TRAIN, or on --eval when the corpus has a dev file of its own (never its test file)."
    E447 = "A pattern seed set takes a share of the seed set between 0 and 1 from pattern matches, got {share}."
    E448 = "spacy_al.TextCatCharLinear.v2 takes loss = one of {losses}, got '{loss}'. Fix the model block of the config."
    E449 = "spacy_al.TextCatCharLinear.v3 needs lsa_dims >= 1 and 0 < lsa_share < 1 (or both 0: v2's features alone), got lsa_dims={dims}, lsa_share={share}. Fix the model block of the config."

    # --- E12xx scaling out with Dask
    E1200 = "'{value}' isn't a Dask address: pass a scheduler's address (e.g. tcp://10.0.0.5:8786) or local:N to start N single-threaded worker processes on this machine (N >= 1)."
    E1201 = "--dask needs dask.distributed, which isn't installed ({err}). Install it with pip install 'spacy-al[dask]', on this machine and on every worker."
    E1202 = "Can't reach the Dask scheduler at {address} ({err}). Start one with 'dask scheduler' and workers with 'dask worker {address}', or pass --dask local:N."
    E1203 = "Scoring on Dask reads the source by byte offsets, so it must be a JSON Lines file; {path} is read as {loader}. Convert it to JSONL, or start without --dask."
    E1204 = "The strategy '{name}' ({strategy}) can't score its pool on Dask: {why} On Dask a strategy either needs no scores ({free}) or ranks each example by its own scores ({ranked}); pick one of those, or start without --dask."
    E1205 = "Patterns are matched in this process over the whole window, so they don't run with --dask. Drop --patterns, or start without --dask."
    E1206 = "The measure '{measure}' can't be scored on Dask: {why} Use least_confidence, margin, entropy or a committee measure (vote_entropy, consensus_entropy, max_kl), or start without --dask."
    E1207 = "NER pools aren't scored on Dask yet (only text classification is): start {what} without --dask."
    E1208 = "--n-jobs {n_jobs} runs simulations in parallel processes; with --dask the pool is scored on the cluster instead, so pass --n-jobs 1."
    E1209 = "The Dask worker at {worker} reads {path} as {size} bytes, but the learner read {expected}: every worker must see the same file at the same path (a shared folder), unchanged while the session runs."
    E1210 = "A partition must hold at least 1 byte, got partition_bytes={value}."
    # --- E11xx the learner process and several servers
    E1100 = "Another learner process holds dataset '{dataset}': {holder} (its heartbeat runs out in {seconds:.0f} s unless it renews it). One learner per dataset: stop it first, or start this one without --no-wait to take over once it stops."
    E1101 = "This learner lost the lock of dataset '{dataset}' (its heartbeat ran out, and another learner took over): it stopped learning. Run one learner per dataset; the one holding the lock goes on."
    E1102 = "A learner process needs a store: the recipe's loop has none. Give the recipe a --db."
    E1103 = "No learner process is running for dataset '{dataset}' (the servers serve what it queued; the model doesn't learn meanwhile). Start one: python -m spacy_al learner {dataset} SOURCE --label ... --db DB (or serve with --learner process)."
    E1104 = "The learner process serves text classification datasets; dataset '{dataset}' is a {task} dataset. Serve it in one process (--learner thread, the default)."
    E1105 = "--learner must be 'thread' (select and learn in this server, the default), 'process' (start a learner process beside this server) or 'remote' (serve only: a learner runs elsewhere, python -m spacy_al learner ...), got '{value}'."
    E1106 = "--dask needs a session that can score on Dask (open_session(..., dask=...)), which this installation doesn't have: {err}"
    E1107 = "Dataset '{dataset}' is served in the '{view}' view, but this learner would queue tasks of {recipe}. Start the learner with the servers' recipe: --recipe textcat.correct for the 'choice' view, textcat.teach for 'classification'."
    E1108 = "A server that follows a learner process can't {what} through its loop (dataset '{dataset}'): it holds no model, the learner selects and learns. Serve through its Feed, which stores answers and reads the learner's queue."
    E1109 = "--over must be 'feed' (annotator threads calling the Feed in the serving process), 'http' (the JSON API server in a process of its own, the annotators in this one) or both: feed,http; got '{value}'."
    # --- E130x the labelling UI (bench ui)
    E1300 = "--views {views} names no view bench ui knows: pass a comma-separated list of {known}."
    E1301 = "bench ui drives a real browser and needs {what}: pip install playwright (its Python package only; never 'playwright install'), and Chromium (apt-get install chromium), or pass --chromium PATH."
    E1302 = "The labelling server didn't start (python -m spacy_al {command}). The end of its log:\n{log}"
    pass


class Warnings(metaclass=ErrorsWithCodes):
    # (W0xx)
    pass


class SpacyALError(Exception):
    """Base class of the few errors a caller is expected to catch."""


class SourceError(SpacyALError, ValueError):
    """A record in a source file is malformed.

    Carries where it is, so that a reader can skip it (``--skip-invalid``) and
    count it, and a person can find and fix it.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path = path
        self.line = line
        self.field = field
        where = ", ".join(
            part
            for part in (
                f"file {path}" if path is not None else "",
                f"line {line}" if line is not None else "",
                f"field '{field}'" if field is not None else "",
            )
            if part
        )
        super().__init__(f"{message} ({where})" if where else message)
