"""Start Streamlit's server in this process, as ``streamlit run`` does.

The CLI passes :func:`run_server` to :func:`spacy_al.serve.launcher.serve_app`:
the recipe's components are built once, here, and the app script finds its feed
through ``spacy_al.serve.launcher.serving_feed()``. The library never imports
Streamlit; the command line does, only to serve the app.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def run_server(app_path: Path, flag_options: dict[str, Any]) -> None:
    """Serve the Streamlit script ``app_path`` with ``flag_options`` (``streamlit
    run``'s ``--section.option`` flags as a dict) until Ctrl+C or SIGTERM, which
    Streamlit's own signal handlers turn into a clean stop."""
    from streamlit import config
    from streamlit.web import bootstrap

    main_script = os.path.abspath(app_path)
    # What `streamlit run` does before loading its options: the script's folder
    # is where a project's .streamlit/ config and secrets are looked for.
    config._main_script_path = main_script
    bootstrap.load_config_options(flag_options=flag_options)
    bootstrap.run(main_script, False, [], flag_options)
