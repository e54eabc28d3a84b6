"""bin/deploy's Pub/Sub steps run for real, with gcloud, against the Pub/Sub emulator.

gcloud talks to the emulator through its endpoint override; ``--only pubsub`` keeps the
steps the emulator can answer (topics, subscriptions), ``--project-number`` the push URL
without a Resource Manager look-up. Run twice, the deployment must succeed both times and
end in the same state; run with a changed delivery policy, it must update the
subscription in place.
"""

from __future__ import annotations

import pytest
from google.cloud import pubsub_v1
from panoptes_network.config import Settings

from tests.conftest import need_tool, skip_or_fail
from tests.deploy.script import REPOSITORY, clean_environment, run_deploy

pytestmark = [pytest.mark.gcp, pytest.mark.slow]

PROJECT_NUMBER = "123456789"
DEFAULTS = Settings.from_env({})
PUSH_URL = f"https://compress-fits-{PROJECT_NUMBER}.us-central1.run.app"
INVOKER = "panoptes-push-invoker@{project}.iam.gserviceaccount.com"


@pytest.fixture
def gcloud_on_emulator(backend, emulators, tmp_path):
    """An environment in which gcloud's Pub/Sub commands reach the emulator, and nothing else."""
    if backend != "gcp":
        pytest.skip("runs on the emulators only")
    need_tool("gcloud")
    if not (REPOSITORY / "compress-fits" / "main.py").is_file():
        skip_or_fail("compress-fits/main.py is not in this checkout")
    token = tmp_path / "token"
    token.write_text("emulator-accepts-any-token\n")
    return clean_environment(
        CLOUDSDK_CONFIG=str(tmp_path / "gcloud"),
        CLOUDSDK_AUTH_ACCESS_TOKEN_FILE=str(token),
        CLOUDSDK_CORE_DISABLE_PROMPTS="1",
        CLOUDSDK_API_ENDPOINT_OVERRIDES_PUBSUB=f"http://{emulators.environment['PUBSUB_EMULATOR_HOST']}/",
    )


def deploy_pubsub(env, project, **policy):
    return run_deploy("compress-fits", "--only", "pubsub", "--project", project, "--region", "us-central1",
                      "--project-number", PROJECT_NUMBER, env={**env, **policy}, check=False)


def topology(project: str) -> tuple[set[str], dict[str, object]]:
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    topics = {t.name.rsplit("/", 1)[1] for t in publisher.list_topics(project=f"projects/{project}")}
    subscriptions = {s.name.rsplit("/", 1)[1]: s
                     for s in subscriber.list_subscriptions(project=f"projects/{project}")}
    return topics, subscriptions


@pytest.mark.parametrize("backend", ["gcp"], indirect=True)
def test_pubsub_setup_is_idempotent_and_updates_in_place(gcloud_on_emulator, emulators):
    project = emulators.project
    first = deploy_pubsub(gcloud_on_emulator, project)
    assert first.returncode == 0, first.stderr
    topics, subscriptions = topology(project)
    assert {DEFAULTS.dead_letter_topic, DEFAULTS.compress_topic, DEFAULTS.record_topic,
            DEFAULTS.rgb_topic} <= topics
    assert subscriptions[f"{DEFAULTS.dead_letter_topic}-held"].topic.endswith("/" + DEFAULTS.dead_letter_topic)
    pushed = subscriptions["compress-fits"]
    assert pushed.topic == f"projects/{project}/topics/{DEFAULTS.compress_topic}"
    assert pushed.push_config.push_endpoint == PUSH_URL + "/"
    assert pushed.push_config.oidc_token.service_account_email == INVOKER.format(project=project)
    assert pushed.push_config.oidc_token.audience == PUSH_URL
    assert pushed.ack_deadline_seconds == 600
    assert pushed.retry_policy.minimum_backoff.total_seconds() == 1
    assert pushed.retry_policy.maximum_backoff.total_seconds() == 60
    assert pushed.dead_letter_policy.dead_letter_topic == f"projects/{project}/topics/{DEFAULTS.dead_letter_topic}"
    assert pushed.dead_letter_policy.max_delivery_attempts == 5

    again = deploy_pubsub(gcloud_on_emulator, project)
    assert again.returncode == 0, again.stderr
    assert topology(project)[0] == topics
    assert topology(project)[1]["compress-fits"] == pushed  # the same, field for field

    changed = deploy_pubsub(gcloud_on_emulator, project, PANOPTES_MAX_ATTEMPTS="7",
                            PANOPTES_MIN_BACKOFF="5", PANOPTES_MAX_BACKOFF="120")
    assert changed.returncode == 0, changed.stderr
    updated = topology(project)[1]["compress-fits"]
    assert updated.dead_letter_policy.max_delivery_attempts == 7
    assert updated.retry_policy.minimum_backoff.total_seconds() == 5
    assert updated.retry_policy.maximum_backoff.total_seconds() == 120
    assert updated.push_config == pushed.push_config


@pytest.mark.parametrize("backend", ["gcp"], indirect=True)
def test_a_failing_command_stops_the_deployment_and_is_named(gcloud_on_emulator, emulators):
    project = emulators.project
    # A topic name Pub/Sub refuses (too short): describe fails, then create fails.
    result = deploy_pubsub({**gcloud_on_emulator, "DEAD_LETTER_TOPIC": "dl"}, project)
    assert result.returncode == 1
    assert "bin/deploy: failed with exit status" in result.stderr
    assert "gcloud pubsub topics create dl" in result.stderr
    # Nothing after the failure ran: the pipeline topics come later in the plan.
    assert DEFAULTS.compress_topic not in topology(project)[0]
