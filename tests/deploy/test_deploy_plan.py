"""bin/deploy SERVICE --dry-run prints the whole deployment: checked command by command.

Each service present in this checkout is dry-run through the real command line, with
``--project panoptes-test --region us-central1``; the plan of every service in the
SERVICES table (present or not yet) is checked through :func:`deploy.plan`.
"""

from __future__ import annotations

import importlib.util
import subprocess
from dataclasses import fields
from pathlib import Path

import pytest
from panoptes_network.adapters.local_queue import DeliveryPolicy
from panoptes_network.config import NAME_VARIABLES, Settings, name_environment
from panoptes_network.stack import deploy
from panoptes_network.stack.services import SERVICES
from panoptes_network.wiring import subscriptions

from tests.conftest import need_tool, skip_or_fail
from tests.deploy.script import REPOSITORY, clean_environment, dry_run, parse, run_deploy

PROJECT, REGION = "panoptes-test", "us-central1"
ARGS = ("--project", PROJECT, "--region", REGION)
DEFAULTS = Settings.from_env({})
INVOKER = f"panoptes-push-invoker@{PROJECT}.iam.gserviceaccount.com"
PUBSUB_AGENT = "serviceAccount:service-${PROJECT_NUMBER}@gcp-sa-pubsub.iam.gserviceaccount.com"
PUBLIC = {"lookup-field", "data-explorer"}


def account(service: str) -> str:
    return f"{service}@{PROJECT}.iam.gserviceaccount.com"


def present(service: str) -> None:
    if not (REPOSITORY / service / "main.py").is_file():
        skip_or_fail(f"{service}/main.py is not in this checkout yet (another branch writes it)")


@pytest.fixture(scope="module")
def scripts():
    cache = {}

    def script(service: str):
        if service not in cache:
            cache[service] = dry_run(service, *ARGS, env=clean_environment())
        return cache[service]

    return script


def deployed_env(command) -> dict[str, str]:
    return dict(item.split("=", 1) for item in command.flag("set-env-vars").split(","))


def check_common(script, service: str) -> None:
    """What every deployment has: APIs, the project number, the dead-letter topic kept, topics."""
    enable = script.one("gcloud", "services", "enable")
    assert {"run.googleapis.com", "cloudfunctions.googleapis.com", "eventarc.googleapis.com",
            "pubsub.googleapis.com"} <= set(enable.positional)
    assert script.one("gcloud", "projects", "describe", PROJECT, role="capture").variable == "PROJECT_NUMBER"
    create = script.one("gcloud", "pubsub", "topics", "create", DEFAULTS.dead_letter_topic)
    assert script.commands[script.index(create) - 1].role == "check"
    held = script.one("gcloud", "pubsub", "subscriptions", "create", f"{DEFAULTS.dead_letter_topic}-held")
    assert held.flag("topic") == DEFAULTS.dead_letter_topic and held.flag("expiration-period") == "never"
    publisher = script.one("gcloud", "pubsub", "topics", "add-iam-policy-binding", DEFAULTS.dead_letter_topic)
    assert publisher.flag("member") == PUBSUB_AGENT and publisher.flag("role") == "roles/pubsub.publisher"
    for topic in (DEFAULTS.compress_topic, DEFAULTS.record_topic, DEFAULTS.rgb_topic):
        script.one("gcloud", "pubsub", "topics", "create", topic)
    # Its own identity, created if absent, with the roles of the table and no others.
    script.one("gcloud", "iam", "service-accounts", "create", service)
    roles = [c.flag("role") for c in script.find("gcloud", "projects", "add-iam-policy-binding", PROJECT)
             if c.flag("member") == f"serviceAccount:{account(service)}"]
    assert roles == list(deploy.DEPLOYMENTS[service].roles)


def check_environment(command, service: str) -> None:
    env = deployed_env(command)
    assert env["PANOPTES_BACKEND"] == "gcp" and env["GOOGLE_CLOUD_PROJECT"] == PROJECT
    assert env["RAW_BUCKET"] == DEFAULTS.raw_bucket and env["DEAD_LETTER_TOPIC"] == DEFAULTS.dead_letter_topic
    assert Settings.from_env(env).compress_topic == DEFAULTS.compress_topic


def check_function(script, service: str):
    deployed = script.one("gcloud", "functions", "deploy", service)
    assert "--gen2" in deployed.argv
    assert deployed.flag("runtime") == "python312"
    assert deployed.flag("entry-point") == SERVICES[service].target
    assert deployed.flag("source") == f"build/deploy/{service}"
    assert deployed.flag("service-account") == account(service)
    auth_flag = "--allow-unauthenticated" if service in PUBLIC else "--no-allow-unauthenticated"
    assert auth_flag in deployed.argv
    assert {"--allow-unauthenticated", "--no-allow-unauthenticated"} - {auth_flag} - set(deployed.argv) == \
        {"--allow-unauthenticated", "--no-allow-unauthenticated"} - {auth_flag}
    check_environment(deployed, service)
    stage_note = next(note for note in script.notes if note.startswith(f"stage {service}/"))
    assert f"-> build/deploy/{service}" in stage_note
    return deployed


def check_eventarc(script, service: str, location: str = REGION) -> None:
    deployed = script.one("gcloud", "functions", "deploy", service)
    assert "--retry" in deployed.argv
    assert deployed.flag("trigger-service-account") == account(service)
    invoker = script.one("gcloud", "functions", "add-invoker-policy-binding", service)
    assert invoker.flag("member") == f"serviceAccount:{account(service)}"
    variable = service.upper().replace("-", "_")
    trigger = script.one("gcloud", "functions", "describe", service, role="capture")
    assert trigger.variable == f"{variable}_TRIGGER"
    subscription = script.one("gcloud", "eventarc", "triggers", "describe", f"${{{variable}_TRIGGER}}")
    assert subscription.variable == f"{variable}_SUBSCRIPTION" and subscription.flag("location") == location
    update = script.one("gcloud", "pubsub", "subscriptions", "update", f"${{{variable}_SUBSCRIPTION}}")
    assert update.flag("dead-letter-topic") == DEFAULTS.dead_letter_topic
    assert update.flag("max-delivery-attempts") == "5"
    assert script.index(deployed) < script.index(trigger) < script.index(subscription) < script.index(update)


def check_push_service(script, service: str) -> None:
    deployed = script.one("gcloud", "run", "deploy", service)
    assert deployed.flag("source") == f"build/deploy/{service}"
    assert "--no-allow-unauthenticated" in deployed.argv and "--allow-unauthenticated" not in deployed.argv
    check_environment(deployed, service)
    url = f"https://{service}-${{PROJECT_NUMBER}}.{REGION}.run.app"
    env = deployed_env(deployed)
    assert env["PUSH_AUDIENCE"] == url and env["PUSH_SERVICE_ACCOUNT"] == INVOKER
    # A request may run as long as Pub/Sub waits for its answer: no redelivery mid-work.
    assert deployed.flag("timeout") == "600s"
    spec = deploy.DEPLOYMENTS[service]
    assert (deployed.flag("cpu"), deployed.flag("memory")) == (str(spec.cpu), spec.memory)
    script.one("gcloud", "iam", "service-accounts", "create", "panoptes-push-invoker")
    creator = script.one("gcloud", "iam", "service-accounts", "add-iam-policy-binding", INVOKER)
    assert creator.flag("member") == PUBSUB_AGENT and creator.flag("role") == "roles/iam.serviceAccountTokenCreator"
    invoker = script.one("gcloud", "run", "services", "add-iam-policy-binding", service)
    assert invoker.flag("member") == f"serviceAccount:{INVOKER}" and invoker.flag("role") == "roles/run.invoker"

    (name, topic), = [(s.name, s.topic) for s in subscriptions(DEFAULTS) if s.service == service]
    create = script.one("gcloud", "pubsub", "subscriptions", "create", name)
    update = script.one("gcloud", "pubsub", "subscriptions", "update", name, role="update")
    assert create.flag("topic") == topic and "topic" not in update.flags
    assert create.flag("expiration-period") == "never"
    # An expiring subscription found in place is made never-expiring.
    probe = script.one("gcloud", "pubsub", "subscriptions", "describe", name, role="probe")
    assert probe.flag("format") == "value(expirationPolicy.ttl)"
    never = script.one("gcloud", "pubsub", "subscriptions", "update", name, role="when-printed")
    assert never.flag("expiration-period") == "never"
    assert script.index(probe) + 1 == script.index(never)
    for command in (create, update):
        assert command.flag("push-endpoint") == url + "/"
        assert command.flag("push-auth-service-account") == INVOKER
        assert command.flag("push-auth-token-audience") == url
        assert command.flag("ack-deadline") == "600"
        assert (command.flag("min-retry-delay"), command.flag("max-retry-delay")) == ("1s", "60s")
        assert command.flag("dead-letter-topic") == DEFAULTS.dead_letter_topic
        assert command.flag("max-delivery-attempts") == "5"
    reader = script.one("gcloud", "pubsub", "subscriptions", "add-iam-policy-binding", name)
    assert reader.flag("member") == PUBSUB_AGENT and reader.flag("role") == "roles/pubsub.subscriber"
    # The service exists before Pub/Sub is told to push to it.
    assert script.index(deployed) < script.index(invoker) < script.index(create)


def test_image_uploaded_is_a_function_on_raw_bucket_finalize(scripts):
    present("image-uploaded")
    script = scripts("image-uploaded")
    check_common(script, "image-uploaded")
    deployed = check_function(script, "image-uploaded")
    assert deployed.flags["trigger-event-filters"] == ["type=google.cloud.storage.object.v1.finalized",
                                                      f"bucket={DEFAULTS.raw_bucket}"]
    assert deployed.flag("trigger-location") == REGION
    assert "trigger-topic" not in deployed.flags and "--trigger-http" not in deployed.argv
    check_eventarc(script, "image-uploaded")
    agent = script.one("gcloud", "storage", "service-agent", role="capture")
    publisher = [c for c in script.find("gcloud", "projects", "add-iam-policy-binding")
                 if c.flag("member") == f"serviceAccount:${{{agent.variable}}}"]
    assert [c.flag("role") for c in publisher] == ["roles/pubsub.publisher"]


def test_record_image_is_a_function_on_its_topic(scripts):
    present("record-image")
    script = scripts("record-image")
    check_common(script, "record-image")
    deployed = check_function(script, "record-image")
    assert deployed.flag("trigger-topic") == DEFAULTS.record_topic
    assert "trigger-event-filters" not in deployed.flags
    check_eventarc(script, "record-image")


@pytest.mark.parametrize("service", ["lookup-field", "get-fits-header"])
def test_http_functions(scripts, service):
    present(service)
    script = scripts(service)
    check_common(script, service)
    deployed = check_function(script, service)
    assert "--trigger-http" in deployed.argv and "--retry" not in deployed.argv
    invokers = [c.flag("member") for c in script.find("gcloud", "functions", "add-invoker-policy-binding", service)]
    assert invokers == [f"serviceAccount:{account(caller)}" for caller in deploy.DEPLOYMENTS[service].invoked_by]


@pytest.mark.parametrize("service", ["compress-fits", "make-rgb-fits", "plate-solve"])
def test_push_services_are_cloud_run_with_authenticated_push_subscriptions(scripts, service):
    present(service)
    script = scripts(service)
    check_common(script, service)
    check_push_service(script, service)


def test_data_explorer_is_a_public_cloud_run_app(scripts):
    present("data-explorer")
    script = scripts("data-explorer")
    check_common(script, "data-explorer")
    deployed = script.one("gcloud", "run", "deploy", "data-explorer")
    assert "--allow-unauthenticated" in deployed.argv and "--no-allow-unauthenticated" not in deployed.argv
    check_environment(deployed, "data-explorer")
    assert "PUSH_AUDIENCE" not in deployed_env(deployed)
    assert not script.find("gcloud", "pubsub", "subscriptions", "create", "data-explorer")


def test_every_service_of_the_table_has_a_complete_plan():
    # Also those whose folder is not in this checkout yet: the plan does not read them.
    target = deploy.Target(PROJECT, REGION, DEFAULTS)
    script = parse("\n".join(step.render() for step in deploy.plan(list(SERVICES), target)))
    for name in SERVICES:
        deployment = deploy.DEPLOYMENTS[name]
        platform = ("gcloud", "functions", "deploy") if deployment.platform == deploy.FUNCTION else \
            ("gcloud", "run", "deploy")
        deployed = script.one(*platform, name)
        assert deployed.flag("source") == f"build/deploy/{name}"
        assert ("--allow-unauthenticated" in deployed.argv) == (name in PUBLIC)
        assert ("--no-allow-unauthenticated" in deployed.argv) == (name not in PUBLIC)
    # Shared steps appear once however many services need them.
    assert len(script.find("gcloud", "services", "enable")) == 1
    assert len(script.find("gcloud", "iam", "service-accounts", "create", "panoptes-push-invoker")) == 1
    assert len(script.find("gcloud", "pubsub", "topics", "create", DEFAULTS.dead_letter_topic)) == 1


def test_the_deployment_table_agrees_with_the_services_and_the_wiring():
    assert set(deploy.DEPLOYMENTS) == set(SERVICES)
    for name, spec in SERVICES.items():
        deployment = deploy.DEPLOYMENTS[name]
        assert (deployment.platform == deploy.FUNCTION) == (spec.kind == "function"), name
        fed = [s.topic for s in subscriptions(DEFAULTS) if s.service == name]
        if deployment.trigger in (deploy.TOPIC, deploy.PUSH):
            assert len(fed) == 1, f"{name} needs exactly one topic in wiring.py"
        elif deployment.trigger != deploy.STORAGE:  # image-uploaded's local uploads topic is Eventarc here
            assert fed == [], f"wiring.py feeds {name}, whose deployment has no topic trigger"
        assert set(deployment.invoked_by) <= set(SERVICES)
    assert {name for name, d in deploy.DEPLOYMENTS.items() if d.public} == PUBLIC


def test_the_names_of_the_operator_environment_are_deployed():
    env = clean_environment(COMPRESS_FITS_TOPIC="frames-to-compress", DEAD_LETTER_TOPIC="panoptes-dlq",
                            PANOPTES_MAX_ATTEMPTS="9", PANOPTES_ACK_DEADLINE="5000")
    present("compress-fits")
    script = dry_run("compress-fits", *ARGS, env=env)
    script.one("gcloud", "pubsub", "topics", "create", "frames-to-compress")
    script.one("gcloud", "pubsub", "topics", "create", "panoptes-dlq")
    create = script.one("gcloud", "pubsub", "subscriptions", "create", "compress-fits")
    assert create.flag("topic") == "frames-to-compress" and create.flag("dead-letter-topic") == "panoptes-dlq"
    assert create.flag("max-delivery-attempts") == "9"
    assert create.flag("ack-deadline") == "600"  # Pub/Sub's maximum, whatever is asked
    deployed = deployed_env(script.one("gcloud", "run", "deploy", "compress-fits"))
    assert deployed["COMPRESS_FITS_TOPIC"] == "frames-to-compress" and deployed["DEAD_LETTER_TOPIC"] == "panoptes-dlq"


def test_name_environment_carries_every_name():
    names = {f.name for f in fields(Settings)} - {"backend", "data_dir"}
    assert set(NAME_VARIABLES) == names
    custom = Settings.from_env({variable: f"custom-{field}".replace("_", "-") for field, variable in
                                NAME_VARIABLES.items()})
    assert Settings.from_env(name_environment(custom)) == custom


def test_delivery_policy_is_clamped_to_pubsub_limits():
    assert deploy.delivery_attempts(DeliveryPolicy(max_attempts=1)) == 5
    assert deploy.delivery_attempts(DeliveryPolicy(max_attempts=500)) == 100
    assert deploy.ack_deadline(DeliveryPolicy(ack_deadline=3)) == 10
    assert deploy.retry_delays(DeliveryPolicy(min_backoff=0.2, max_backoff=1)) == (0, 1)
    assert deploy.retry_delays(DeliveryPolicy(min_backoff=30, max_backoff=9999)) == (30, 600)


def run_main(root, *arguments: str, **env: str) -> subprocess.CompletedProcess:
    """bin/deploy's main() on another checkout ``root``."""
    code = ("import pathlib, sys; from panoptes_network.stack.deploy import main; "
            f"sys.exit(main({list(arguments)!r}, root=pathlib.Path({str(root)!r})))")
    return subprocess.run([str(REPOSITORY / ".venv" / "bin" / "python"), "-c", code], capture_output=True,
                          text=True, env=clean_environment(**env))


def test_dry_run_output_is_a_valid_shell_script_and_runs_nothing(tmp_path):
    present("compress-fits")
    root = tmp_path / "checkout"
    root.mkdir()
    for folder in ("compress-fits", "shared"):
        (root / folder).symlink_to(REPOSITORY / folder)
    # No gcloud on the PATH: any attempt to run a command would fail the dry run.
    result = run_main(root, "compress-fits", *ARGS, "--dry-run", PATH="/nonexistent")
    assert result.returncode == 0, result.stderr
    assert "gcloud run deploy compress-fits" in result.stdout
    assert not (root / "build").exists()  # staging is announced, not done
    syntax = subprocess.run(["bash", "-n"], input=result.stdout, capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr


def test_all_deploys_every_service_in_table_order():
    missing = [name for name in SERVICES if not (REPOSITORY / name / "main.py").is_file()]
    if missing:
        skip_or_fail(f"not in this checkout yet: {', '.join(missing)}")
    script = dry_run("all", *ARGS, env=clean_environment())
    deployed = [c.argv[3] for c in script.commands if c.argv[:3] in (["gcloud", "functions", "deploy"],
                                                                      ["gcloud", "run", "deploy"])]
    assert deployed == list(SERVICES)


def test_only_pubsub_keeps_the_pubsub_steps_and_what_they_read():
    present("compress-fits")
    script = dry_run("compress-fits", *ARGS, "--only", "pubsub", env=clean_environment())
    groups = {" ".join(c.argv[1:3]) for c in script.commands}
    assert groups == {"pubsub topics", "pubsub subscriptions", "projects describe"}
    assert script.one("gcloud", "projects", "describe", PROJECT, role="capture").variable == "PROJECT_NUMBER"
    with_number = dry_run("compress-fits", *ARGS, "--only", "pubsub", "--project-number", "123",
                          env=clean_environment())
    assert not with_number.find("gcloud", "projects", "describe")
    create = with_number.one("gcloud", "pubsub", "subscriptions", "create", "compress-fits")
    assert create.flag("push-endpoint") == f"https://compress-fits-123.{REGION}.run.app/"


@pytest.mark.parametrize("arguments, message", [
    (["bogus"], "unknown service 'bogus'; valid: " + ", ".join(SERVICES) + ", or all"),
    (["all", "compress-fits"], "'all' deploys every service"),
    (["compress-fits", "--project", "Bad_Project"], "is not a Google Cloud project id"),
    (["compress-fits", "--project", PROJECT, "--region", "mars"], "is not a region"),
    (["compress-fits"], "which project? give --project P"),
    (["compress-fits", *ARGS, "--project-number", "١٢٣"], "is not a number"),  # ASCII digits only
])
def test_bad_requests_get_a_clear_error_and_run_nothing(arguments, message):
    result = run_deploy(*arguments, "--dry-run", env=clean_environment(), check=False)
    assert result.returncode == 2
    assert message in result.stderr and result.stdout == ""


def test_a_service_not_in_the_checkout_is_refused(tmp_path):
    root = tmp_path / "checkout"  # the shared library and no service folder
    root.mkdir()
    (root / "shared").symlink_to(REPOSITORY / "shared")
    result = run_main(root, "make-rgb-fits", "--dry-run")
    assert result.returncode == 2
    assert "make-rgb-fits has no make-rgb-fits/main.py in this checkout" in result.stderr


@pytest.fixture(scope="module")
def gcloud_tree():
    """gcloud's own list of its commands and flags (the static completion tree it ships)."""
    need_tool("gcloud")
    root = subprocess.run(["gcloud", "info", "--format=value(installation.sdk_root)"], capture_output=True,
                          text=True, check=True).stdout.strip()
    path = Path(root) / "data" / "cli" / "gcloud_completions.py"
    if not path.is_file():
        skip_or_fail(f"this gcloud ships no completion tree at {path}")
    spec = importlib.util.spec_from_file_location("gcloud_completions", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.STATIC_COMPLETION_CLI_TREE


def test_every_command_and_flag_of_the_plan_exists_in_gcloud(gcloud_tree):
    target = deploy.Target(PROJECT, REGION, DEFAULTS, create_buckets=True)
    script = parse("\n".join(step.render() for step in deploy.plan(list(SERVICES), target)))
    assert script.commands
    for command in script.commands:
        assert command.argv[0] == "gcloud", command.argv
        node, path = gcloud_tree, ["gcloud"]
        for word in command.argv[1:]:
            if word.startswith("-") or word not in node.get("commands", {}):
                break
            node, path = node["commands"][word], path + [word]
        assert not node.get("commands"), f"{' '.join(path)} is a command group, not a command"
        known = {**gcloud_tree["flags"], **node.get("flags", {})}
        for name in command.flags:
            negated = name.removeprefix("no-")
            assert f"--{name}" in known or known.get(f"--{negated}") == "bool", f"{' '.join(path)} has no --{name}"


def test_plate_solve_runs_on_two_vcpus_one_frame_at_a_time(scripts):
    present("plate-solve")
    deployed = scripts("plate-solve").one("gcloud", "run", "deploy", "plate-solve")
    assert deployed.flag("cpu") == "2" and deployed.flag("concurrency") == "1"
    environment = deployed_env(deployed)
    assert environment["PLATE_SOLVE_TOPIC"] == "plate-solve"
    assert environment["PROCESSED_BUCKET"] == "panoptes-processed-images"
