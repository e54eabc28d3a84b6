"""data-explorer: the scientists' web app to search observations and browse their frames (Cloud Run).

Pages are server-rendered; the JSON API they and scripts use is the shared blueprint
:mod:`panoptes_network.explorer.api`. Plots are plotly.js, served from the installed
plotly package: nothing is loaded from outside the app.
"""

from pathlib import Path

import flask

from panoptes_network.explorer import api as explorer
from panoptes_network.explorer import stars
from panoptes_network.explorer.remote import RemoteError
from panoptes_network.explorer.search import FILTERS, ParameterError

app = flask.Flask(__name__)
app.json.sort_keys = False  # a FITS header reads in card order
app.register_blueprint(explorer.api, url_prefix="/api")
PLOTLY_JS = Path(__import__("plotly").__file__).parent / "package_data" / "plotly.min.js"


@app.get("/")
def overview():
    return flask.render_template("overview.html", data=explorer.overview(explorer.parse_year(flask.request.args)))


@app.get("/search")
def search_page():
    args = flask.request.args
    result = explorer.run_search(args) if any(args.get(key) for key in FILTERS) else None
    return flask.render_template("search.html", args=args, result=result, units=explorer.unit_list())


@app.get("/observations/<sequence_id>")
def observation_page(sequence_id):
    found, images = explorer.get_observation(sequence_id), explorer.get_images(sequence_id)
    return flask.render_template("observation.html", observation=found, images=images,
                                 series=explorer.frame_series(images), runs=explorer.observation_runs(sequence_id))


@app.get("/stars")
def stars_page():
    args = flask.request.args
    searched = any(args.get(key) for key in stars.STAR_FILTERS) or args.get("list")
    result = explorer.run_star_search(args) if searched else None
    return flask.render_template("stars.html", args=args, result=result)


@app.get("/stars/<picid>")
def star_page(picid):
    """The star and the observations covering it; its lightcurves (a hundred of 3 x 240 points
    weigh megabytes) come from the API once the page is shown (static/stars.js)."""
    star = explorer.get_star(picid)
    observations = explorer.star_observations(star, [])
    return flask.render_template("star.html", star=star, observations=observations,
                                 images=explorer.star_images(observations), period=flask.request.args.get("period", ""))


@app.get("/units/<unit_id>")
def unit_page(unit_id):
    found, observations = explorer.get_unit(unit_id), explorer.unit_observations(unit_id)
    return flask.render_template("unit.html", unit=found, observations=observations,
                                 series=explorer.observation_series(observations))


@app.get("/vendor/plotly.min.js")
def plotly_js():
    return flask.send_file(PLOTLY_JS, mimetype="text/javascript", max_age=86400)


@app.errorhandler(ParameterError)
def bad_parameter(error):
    return flask.render_template("error.html", status=400, message=str(error)), 400


@app.errorhandler(explorer.NotFound)
@app.errorhandler(404)
def not_found(error):
    return flask.render_template("error.html", status=404, message=str(error)), 404


@app.errorhandler(RemoteError)
def remote_failed(error):
    return flask.render_template("error.html", status=error.status, message=str(error)), error.status
