"""The Gradio demo: the page (:mod:`.page`), its engine (:mod:`.engine`), inputs, examples and
looks. Fast mode runs on :mod:`dpst.serve.runtime`; Quality mode needs torch."""
