# Convenience targets; they use the README's .venv.
PROFILE ?= smoke
PY := .venv/bin/python
NOTEBOOKS := $(sort $(wildcard notebooks/0*.ipynb))

.PHONY: test notebooks figures
test:
	$(PY) -m pytest

# run every notebook top to bottom in $(PROFILE) (outputs under runs/, the committed notebooks stay clean)
notebooks:
	mkdir -p runs
	for nb in $(NOTEBOOKS); do \
		$(PY) -m papermill --cwd notebooks $$nb runs/$$(basename $$nb .ipynb)_$(PROFILE).ipynb -p profile $(PROFILE) || exit 1; \
	done

# redraw every paper figure from cached results (no training)
figures:
	$(PY) -m fgclip_utils figures --profile $(PROFILE)
