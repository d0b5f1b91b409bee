"""The Flask shop started the way a developer does: ``python -m tests.apps.flask_debug_run PORT``
runs ``app.run(debug=True)``, whose Werkzeug reloader re-runs this module in a child process."""

import sys

from tests.apps.flask_app import app

if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(sys.argv[1]), debug=True)
