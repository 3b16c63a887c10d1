"""What ebbflow serves to people: the live status page (`view.py` the model, `page.py`
and `templates/` the rendering, `routes.py` the routes and live updates, `topology.py`
Grafana's node graph) and the web config for all of it (`config.py` TLS, `auth.py` basic
auth). Read-only: nothing here acts."""
