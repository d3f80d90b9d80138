"""The adversarial corpus: hostile and broken submissions, each built by a script (``build``)."""
