"""``bin/deploy``: one command deploys a service with everything it needs.

A deployment is a plan: a list of gcloud commands, each safe to repeat. Resources are
made with describe-or-create (a subscription that exists is updated to the current
settings instead), IAM bindings with add-*-policy-binding, which adds nothing twice.
``--dry-run`` prints the plan as a shell script and runs nothing; without it each line
is printed, then run, and the first failure stops the deployment.

What each service is, and what it may touch, is the :data:`DEPLOYMENTS` table below; the
names of topics and buckets come from :mod:`panoptes_network.config`, which topic feeds
which service from :mod:`panoptes_network.wiring`, the delivery policy (attempts, backoff,
ack deadline) from :class:`~panoptes_network.adapters.local_queue.DeliveryPolicy`, as on
the local stack.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from panoptes_network.adapters.local_queue import DeliveryPolicy
from panoptes_network.config import Settings, name_environment
from panoptes_network.config import settings as current_settings
from panoptes_network.deadletter import HELD_SUFFIX
from panoptes_network.stack.gcp import MIN_DELIVERY_ATTEMPTS
from panoptes_network.stack.services import SERVICES, repository_root
from panoptes_network.stack.staging import StagingError, missing_reason, stage
from panoptes_network.wiring import subscriptions

PYTHON_RUNTIME = "python312"  # Cloud Functions runtime; the Dockerfiles use python:3.12-slim to match
DEFAULT_REGION = "us-central1"
STAGING_DIR = Path("build") / "deploy"  # relative to the repository root, where every command runs
PUSH_INVOKER = "panoptes-push-invoker"  # the identity Pub/Sub pushes as (OIDC token)
MAX_DELIVERY_ATTEMPTS = 100  # Pub/Sub's upper bound for a dead-letter policy
MAX_ACK_DEADLINE = 600  # Pub/Sub's upper bound, seconds
DEAD_LETTER_RETENTION = "7d"
STORAGE_FINALIZED = "google.cloud.storage.object.v1.finalized"

APIS = (
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudscheduler.googleapis.com",  # process-observation's sweep (and reconcile, when scheduled)
    "eventarc.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "storage.googleapis.com",
)

# Platforms and triggers.
FUNCTION, CLOUD_RUN = "function", "cloud-run"
STORAGE, TOPIC, HTTP, PUSH, WEB = "storage-finalize", "pubsub-topic", "http", "pubsub-push", "web"


@dataclass(frozen=True)
class Deployment:
    platform: str  # FUNCTION (Cloud Functions gen2) or CLOUD_RUN (built from the service's Dockerfile)
    trigger: str  # STORAGE, TOPIC (function triggers), HTTP, PUSH (Cloud Run push endpoint), WEB (public site)
    public: bool = False  # --allow-unauthenticated
    memory: str = "512Mi"
    timeout_seconds: int = 60  # a PUSH service's is its subscription's ack deadline
    concurrency: int | None = None  # Cloud Run requests per instance
    cpu: int = 1  # Cloud Run vCPUs per instance
    max_instances: int = 10
    roles: tuple[str, ...] = ()  # project roles of the service's own identity
    invoked_by: tuple[str, ...] = ()  # services whose identity may call this one


DEPLOYMENTS: dict[str, Deployment] = {
    # Routes every upload: moves objects between buckets, publishes to the pipeline topics.
    "image-uploaded": Deployment(FUNCTION, STORAGE, memory="512Mi", timeout_seconds=120,
                                 roles=("roles/storage.objectAdmin", "roles/pubsub.publisher",
                                        "roles/eventarc.eventReceiver")),
    # Reads a frame, writes .fz, deletes the .fits; dead letters go to Firestore. Compresses
    # on every core (fits.py), hence two.
    "compress-fits": Deployment(CLOUD_RUN, PUSH, memory="2Gi", cpu=2, concurrency=2,
                                roles=("roles/storage.objectAdmin", "roles/datastore.user")),
    # Reads a raw frame, writes three planes to the RGB bucket (issue 4: a full frame fits 1 GiB).
    "make-rgb-fits": Deployment(CLOUD_RUN, PUSH, memory="1Gi", concurrency=1,
                                roles=("roles/storage.objectAdmin", "roles/datastore.user")),
    # Reads a frame, solves it (tetra3rs on two cores, astrometry.net), writes its WCS to the
    # processed bucket and its solve to images/observations. Its tetra3rs database ships in
    # the image; a full frame peaks under 1 GiB.
    "plate-solve": Deployment(CLOUD_RUN, PUSH, memory="2Gi", cpu=2, concurrency=1,
                              roles=("roles/storage.objectAdmin", "roles/datastore.user")),
    # Reads an observation's frames and WCS, measures them on every core, writes the run, its
    # lightcurves (arrays of long ones to the processed bucket) and stars; its POST /sweep
    # (Cloud Scheduler) publishes the observations ready for a run.
    "process-observation": Deployment(CLOUD_RUN, PUSH, memory="4Gi", cpu=2, concurrency=1,
                                      roles=("roles/storage.objectAdmin", "roles/datastore.user",
                                             "roles/pubsub.publisher")),
    # Reads a header with range requests, writes images/observations/units.
    "record-image": Deployment(FUNCTION, TOPIC, memory="1Gi", timeout_seconds=300,
                               roles=("roles/storage.objectViewer", "roles/datastore.user")),
    # Resolves names from shipped catalogs (or online): touches no project resource.
    "lookup-field": Deployment(FUNCTION, HTTP, public=True, memory="512Mi"),
    # Reads header bytes; the data explorer calls it for the observation pages.
    "get-fits-header": Deployment(FUNCTION, HTTP, memory="512Mi",
                                  roles=("roles/storage.objectViewer",), invoked_by=("data-explorer",)),
    # The public web app: reads the documents, keeps previews in a bucket.
    "data-explorer": Deployment(CLOUD_RUN, WEB, public=True, memory="1Gi", concurrency=40, timeout_seconds=60,
                                roles=("roles/datastore.viewer", "roles/storage.objectAdmin")),
}


class DeployError(Exception):
    """The request cannot be deployed as asked (exit status 2)."""


class CommandFailed(DeployError):
    """A command of the plan failed (exit status 1); the steps before it stay done."""


# --- steps -------------------------------------------------------------------------------

_PLAIN = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")
_VARIABLE = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


def quote(argument: str) -> str:
    """Shell quoting that leaves our ``${VARIABLE}`` references expandable."""
    flag = re.fullmatch(r"(--[a-z0-9-]+=)(.*)", argument, re.DOTALL)
    if flag and not _PLAIN.fullmatch(argument):
        return flag.group(1) + quote(flag.group(2))  # --format='value(x)' reads better
    if _PLAIN.fullmatch(argument):
        return argument
    if "${" in argument:
        unquoted = _VARIABLE.sub("", argument)
        if not unquoted or _PLAIN.fullmatch(unquoted):
            return argument
        return '"' + re.sub(r'(["\\`])', r"\\\1", argument) + '"'
    return shlex.quote(argument)


LINE_WIDTH = 100


def render(command: tuple[str, ...], indent: str = "") -> str:
    """A command as shell, one flag a line when it is long."""
    words = [quote(argument) for argument in command]
    if len(indent) + sum(len(word) + 1 for word in words) <= LINE_WIDTH:
        return " ".join(words)
    head = 0
    while head < len(words) and not words[head].startswith("-"):
        head += 1
    lines = [words[0]]
    for word in words[1:head]:  # positional arguments fill lines
        if len(lines[-1]) + 1 + len(word) > LINE_WIDTH:
            lines.append(f"{indent}    {word}")
        else:
            lines[-1] += " " + word
    lines += [f"{indent}    {word}" for word in words[head:]]
    return " \\\n".join(lines)


@dataclass(frozen=True)
class Step:
    category: str  # apis | iam | pubsub | storage | deploy: what --only selects

    def variables(self) -> set[str]:
        return {name for command in self.commands() for argument in command for name in _VARIABLE.findall(argument)}

    def commands(self) -> tuple[tuple[str, ...], ...]:
        return ()


@dataclass(frozen=True)
class Note(Step):
    text: str = ""

    def render(self) -> str:
        return f"# {self.text}"


@dataclass(frozen=True)
class Run(Step):
    command: tuple[str, ...] = ()

    def commands(self):
        return (self.command,)

    def render(self) -> str:
        return render(self.command)


@dataclass(frozen=True)
class Ensure(Step):
    """Create a resource if ``check`` says it is absent; if present, ``update`` it (when given)."""

    check: tuple[str, ...] = ()
    create: tuple[str, ...] = ()
    update: tuple[str, ...] | None = None

    def commands(self):
        return (self.check, self.create) + ((self.update,) if self.update else ())

    def render(self) -> str:
        check = f"{render(self.check)} >/dev/null 2>&1"
        if self.update:
            return (f"if {check}; then\n  {render(self.update, '  ')}\n"
                    f"else\n  {render(self.create, '  ')}\nfi")
        create = render(self.create, "  ")
        if len(check) + len(create) + 4 <= LINE_WIDTH and "\n" not in create:
            return f"{check} || {create}"
        return f"{check} ||\n  {create}"


@dataclass(frozen=True)
class WhenPrinted(Step):
    """Run ``command`` only if ``probe`` prints something (a setting that is not yet as wanted)."""

    probe: tuple[str, ...] = ()
    command: tuple[str, ...] = ()

    def commands(self):
        return (self.probe, self.command)

    def render(self) -> str:
        return f'[ -z "$({render(self.probe)})" ] ||\n  {render(self.command, "  ")}'


@dataclass(frozen=True)
class Capture(Step):
    """Run ``command`` and keep its output as ``${variable}`` for the steps after it."""

    variable: str = ""
    command: tuple[str, ...] = ()

    def commands(self):
        return (self.command,)

    def render(self) -> str:
        return f"{self.variable}=$({render(self.command)})"


@dataclass(frozen=True)
class Stage(Step):
    service: str = ""
    directory: str = ""

    def render(self) -> str:
        return (f"# stage {self.service}/ + shared/panoptes_network + requirements.txt from the lock"
                f" -> {self.directory}  (bin/deploy {self.service} --stage DIR does only this)")


# --- the plan ----------------------------------------------------------------------------

RECONCILE_JOB = "panoptes-reconcile"
RECONCILER = "compress-fits"  # serves POST /reconcile: it already reads the raw bucket and writes documents

@dataclass(frozen=True)
class Target:
    project: str
    region: str
    settings: Settings
    policy: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    create_buckets: bool = False
    raw_bucket_location: str | None = None  # Eventarc trigger location; the region by default
    project_number: str | None = None  # looked up when not given
    reconcile_schedule: str | None = None  # cron: a Cloud Scheduler job calls compress-fits' /reconcile

    @property
    def number(self) -> str:
        return self.project_number or "${PROJECT_NUMBER}"

    @property
    def pubsub_agent(self) -> str:
        return f"serviceAccount:service-{self.number}@gcp-sa-pubsub.iam.gserviceaccount.com"

    def account(self, name: str) -> str:
        return f"{name}@{self.project}.iam.gserviceaccount.com"

    def flags(self) -> tuple[str, ...]:
        return (f"--project={self.project}",)

    def regional(self) -> tuple[str, ...]:
        return (f"--project={self.project}", f"--region={self.region}")


def ack_deadline(policy: DeliveryPolicy) -> int:
    return int(min(MAX_ACK_DEADLINE, max(10, policy.ack_deadline)))


def delivery_attempts(policy: DeliveryPolicy) -> int:
    return min(MAX_DELIVERY_ATTEMPTS, max(MIN_DELIVERY_ATTEMPTS, policy.max_attempts))


def retry_delays(policy: DeliveryPolicy) -> tuple[int, int]:
    maximum = int(min(MAX_ACK_DEADLINE, max(1, round(policy.max_backoff))))
    return min(maximum, max(0, round(policy.min_backoff))), maximum


def push_url(service: str, target: Target) -> str:
    # Cloud Run's deterministic URL: known before the first deployment, so the service
    # can be given its own audience in the same deployment.
    return f"https://{service}-{target.number}.{target.region}.run.app"


def feeding_topics(service: str, settings: Settings) -> list[tuple[str, str]]:
    """(subscription name, topic) of each topic that feeds ``service`` (wiring.py)."""
    return [(s.name, s.topic) for s in subscriptions(settings) if s.service == service]


def pipeline_topics(settings: Settings) -> list[str]:
    """Every topic a deployed service subscribes to (storage uploads come through Eventarc)."""
    topics = []
    for subscription in subscriptions(settings):
        deployment = DEPLOYMENTS.get(subscription.service)
        if deployment and deployment.trigger in (TOPIC, PUSH) and subscription.topic not in topics:
            topics.append(subscription.topic)
    return topics


def ensure_topic(topic: str, target: Target) -> Ensure:
    return Ensure("pubsub", ("gcloud", "pubsub", "topics", "describe", topic, *target.flags()),
                  ("gcloud", "pubsub", "topics", "create", topic, *target.flags()))


def ensure_account(name: str, description: str, target: Target) -> Ensure:
    return Ensure("iam", ("gcloud", "iam", "service-accounts", "describe", target.account(name), *target.flags()),
                  ("gcloud", "iam", "service-accounts", "create", name, *target.flags(),
                   f"--display-name={description}"))


def project_role(member: str, role: str, target: Target) -> Run:
    return Run("iam", ("gcloud", "projects", "add-iam-policy-binding", target.project, f"--member={member}",
                       f"--role={role}", "--condition=None", "--quiet", "--format=none"))


def token_creator_for_pubsub(account: str, target: Target) -> Run:
    # Pub/Sub mints the OIDC tokens of pushes (and of Eventarc deliveries) as ``account``.
    return Run("iam", ("gcloud", "iam", "service-accounts", "add-iam-policy-binding", target.account(account),
                       *target.flags(), f"--member={target.pubsub_agent}",
                       "--role=roles/iam.serviceAccountTokenCreator", "--quiet", "--format=none"))


def common_steps(target: Target) -> list[Step]:
    settings = target.settings
    steps: list[Step] = [
        Note("apis", f"PANOPTES Network -> project {target.project}, region {target.region}"
                     " (run from the repository root)"),
        Run("apis", ("gcloud", "services", "enable", *APIS, *target.flags())),
    ]
    if not target.project_number:
        steps.append(Capture("iam", "PROJECT_NUMBER", ("gcloud", "projects", "describe", target.project,
                                                      "--format=value(projectNumber)")))
    if target.create_buckets:
        for bucket in settings.buckets:
            steps.append(Ensure("storage", ("gcloud", "storage", "buckets", "describe", f"gs://{bucket}",
                                            *target.flags()),
                                ("gcloud", "storage", "buckets", "create", f"gs://{bucket}", *target.flags(),
                                 f"--location={target.region}", "--uniform-bucket-level-access")))
    dead_letter = settings.dead_letter_topic
    steps += [
        ensure_topic(dead_letter, target),
        # A topic without a subscription drops what it receives: keep dead letters to look at.
        Ensure("pubsub", ("gcloud", "pubsub", "subscriptions", "describe", f"{dead_letter}{HELD_SUFFIX}",
                          *target.flags()),
               ("gcloud", "pubsub", "subscriptions", "create", f"{dead_letter}{HELD_SUFFIX}", *target.flags(),
                f"--topic={dead_letter}", f"--message-retention-duration={DEAD_LETTER_RETENTION}",
                "--expiration-period=never")),
        Run("iam", ("gcloud", "pubsub", "topics", "add-iam-policy-binding", dead_letter, *target.flags(),
                    f"--member={target.pubsub_agent}", "--role=roles/pubsub.publisher", "--format=none")),
    ]
    # Every topic exists whatever is deployed first: image-uploaded publishes to them all.
    steps += [ensure_topic(topic, target) for topic in pipeline_topics(settings)]
    return steps


def environment(service: str, target: Target) -> dict[str, str]:
    env = {"PANOPTES_BACKEND": "gcp", **name_environment(target.settings), "GOOGLE_CLOUD_PROJECT": target.project}
    if DEPLOYMENTS[service].trigger == PUSH:
        env["PUSH_AUDIENCE"] = push_url(service, target)
        env["PUSH_SERVICE_ACCOUNT"] = target.account(PUSH_INVOKER)
    for key, value in env.items():
        if "," in value:
            raise DeployError(f"{key}={value!r}: a comma cannot be passed in --set-env-vars")
    return env


def _env_flag(env: dict[str, str]) -> str:
    return "--set-env-vars=" + ",".join(f"{key}={value}" for key, value in env.items())


def function_steps(service: str, deployment: Deployment, target: Target, source: str) -> list[Step]:
    account = target.account(service)
    command = ["gcloud", "functions", "deploy", service, "--gen2", *target.regional(),
               f"--runtime={PYTHON_RUNTIME}", f"--source={source}", f"--entry-point={SERVICES[service].target}",
               f"--service-account={account}", f"--memory={deployment.memory}",
               f"--timeout={deployment.timeout_seconds}s", f"--max-instances={deployment.max_instances}",
               _env_flag(environment(service, target)),
               "--allow-unauthenticated" if deployment.public else "--no-allow-unauthenticated"]
    if deployment.trigger == STORAGE:
        command += [f"--trigger-event-filters=type={STORAGE_FINALIZED}",
                    f"--trigger-event-filters=bucket={target.settings.raw_bucket}",
                    f"--trigger-location={target.raw_bucket_location or target.region}",
                    f"--trigger-service-account={account}", "--retry"]
    elif deployment.trigger == TOPIC:
        (_, topic), = feeding_topics(service, target.settings)
        command += [f"--trigger-topic={topic}", f"--trigger-service-account={account}", "--retry"]
    elif deployment.trigger == HTTP:
        command += ["--trigger-http"]
    else:
        raise DeployError(f"{service}: a function cannot have a {deployment.trigger} trigger")
    steps: list[Step] = [Run("deploy", tuple(command + ["--quiet"]))]

    if deployment.trigger in (STORAGE, TOPIC):
        steps += eventarc_steps(service, account, target)
    for caller in deployment.invoked_by:
        steps += [ensure_account(caller, f"PANOPTES {caller}", target),
                  Run("iam", ("gcloud", "functions", "add-invoker-policy-binding", service, *target.regional(),
                              f"--member=serviceAccount:{target.account(caller)}", "--format=none"))]
    return steps


def eventarc_steps(service: str, account: str, target: Target) -> list[Step]:
    """Eventarc delivers as the function's identity, through a Pub/Sub subscription it owns."""
    variable = service.upper().replace("-", "_")
    storage = DEPLOYMENTS[service].trigger == STORAGE
    location = (target.raw_bucket_location or target.region) if storage else target.region
    steps: list[Step] = []
    if storage:
        # Cloud Storage publishes the finalize events to Eventarc's topic as its service agent.
        steps += [Capture("iam", "STORAGE_AGENT", ("gcloud", "storage", "service-agent", *target.flags())),
                  project_role("serviceAccount:${STORAGE_AGENT}", "roles/pubsub.publisher", target)]
    steps += [
        token_creator_for_pubsub(service, target),
        Run("iam", ("gcloud", "functions", "add-invoker-policy-binding", service, *target.regional(),
                    f"--member=serviceAccount:{account}", "--format=none")),
        # The trigger's own subscription retries (--retry) until it dead-letters like the others.
        Capture("pubsub", f"{variable}_TRIGGER", ("gcloud", "functions", "describe", service, *target.regional(),
                                                  "--format=value(eventTrigger.trigger)")),
        Capture("pubsub", f"{variable}_SUBSCRIPTION",
                ("gcloud", "eventarc", "triggers", "describe", f"${{{variable}_TRIGGER}}", *target.flags(),
                 f"--location={location}", "--format=value(transport.pubsub.subscription)")),
        Run("pubsub", ("gcloud", "pubsub", "subscriptions", "update", f"${{{variable}_SUBSCRIPTION}}",
                       *target.flags(), *retry_settings(target), *dead_letter_settings(target))),
        dead_letter_reader(f"${{{variable}_SUBSCRIPTION}}", target),
    ]
    return steps


def retry_settings(target: Target) -> tuple[str, ...]:
    minimum, maximum = retry_delays(target.policy)
    return (f"--min-retry-delay={minimum}s", f"--max-retry-delay={maximum}s")


def dead_letter_settings(target: Target) -> tuple[str, ...]:
    return (f"--dead-letter-topic={target.settings.dead_letter_topic}",
            f"--max-delivery-attempts={delivery_attempts(target.policy)}")


def dead_letter_reader(subscription: str, target: Target) -> Run:
    # Pub/Sub forwards to the dead-letter topic as its service agent, which must read the source.
    return Run("iam", ("gcloud", "pubsub", "subscriptions", "add-iam-policy-binding", subscription,
                       *target.flags(), f"--member={target.pubsub_agent}", "--role=roles/pubsub.subscriber",
                       "--format=none"))


def cloud_run_steps(service: str, deployment: Deployment, target: Target, source: str) -> list[Step]:
    timeout = ack_deadline(target.policy) if deployment.trigger == PUSH else deployment.timeout_seconds
    command = ["gcloud", "run", "deploy", service, *target.regional(), f"--source={source}",
               f"--service-account={target.account(service)}", f"--memory={deployment.memory}",
               f"--cpu={deployment.cpu}",
               f"--concurrency={deployment.concurrency or 80}", f"--timeout={timeout}s",
               f"--max-instances={deployment.max_instances}", _env_flag(environment(service, target)),
               "--allow-unauthenticated" if deployment.public else "--no-allow-unauthenticated", "--quiet"]
    steps: list[Step] = []
    if deployment.trigger == PUSH:
        steps += [ensure_account(PUSH_INVOKER, "PANOPTES Pub/Sub push", target),
                  token_creator_for_pubsub(PUSH_INVOKER, target)]
    steps.append(Run("deploy", tuple(command)))
    if deployment.trigger == PUSH:
        steps.append(Run("iam", ("gcloud", "run", "services", "add-iam-policy-binding", service, *target.regional(),
                                 f"--member=serviceAccount:{target.account(PUSH_INVOKER)}",
                                 "--role=roles/run.invoker", "--format=none")))
        url = push_url(service, target)
        for name, topic in feeding_topics(service, target.settings):
            push = (f"--push-endpoint={url}/", f"--push-auth-service-account={target.account(PUSH_INVOKER)}",
                    f"--push-auth-token-audience={url}", f"--ack-deadline={ack_deadline(target.policy)}",
                    *retry_settings(target), *dead_letter_settings(target))
            steps += [
                Ensure("pubsub",
                       ("gcloud", "pubsub", "subscriptions", "describe", name, *target.flags()),
                       ("gcloud", "pubsub", "subscriptions", "create", name, *target.flags(), f"--topic={topic}",
                        *push, "--expiration-period=never"),
                       ("gcloud", "pubsub", "subscriptions", "update", name, *target.flags(), *push)),
                # An idle subscription expires after 31 days by default: units can be quiet that long.
                WhenPrinted("pubsub",
                            ("gcloud", "pubsub", "subscriptions", "describe", name, *target.flags(),
                             "--format=value(expirationPolicy.ttl)"),
                            ("gcloud", "pubsub", "subscriptions", "update", name, *target.flags(),
                             "--expiration-period=never")),
            ]
            steps.append(dead_letter_reader(name, target))
    for caller in deployment.invoked_by:
        steps += [ensure_account(caller, f"PANOPTES {caller}", target),
                  Run("iam", ("gcloud", "run", "services", "add-iam-policy-binding", service, *target.regional(),
                              f"--member=serviceAccount:{target.account(caller)}", "--role=roles/run.invoker",
                              "--format=none"))]
    return steps


def describe(service: str, deployment: Deployment, target: Target) -> str:
    settings = target.settings
    what = {
        STORAGE: f"Cloud Function gen2 ({PYTHON_RUNTIME}), Eventarc trigger on object finalize in "
                 f"gs://{settings.raw_bucket}",
        TOPIC: f"Cloud Function gen2 ({PYTHON_RUNTIME}), Pub/Sub trigger on "
               + ", ".join(topic for _, topic in feeding_topics(service, settings)),
        HTTP: f"Cloud Function gen2 ({PYTHON_RUNTIME}), HTTP",
        PUSH: "Cloud Run, Pub/Sub push from " + ", ".join(topic for _, topic in feeding_topics(service, settings)),
        WEB: "Cloud Run web app",
    }[deployment.trigger]
    return f"{service}: {what}, {'public' if deployment.public else 'authenticated callers only'}"


def service_steps(service: str, target: Target) -> list[Step]:
    deployment = DEPLOYMENTS[service]
    source = str(STAGING_DIR / service)
    steps: list[Step] = [Note("deploy", describe(service, deployment, target)),
                         ensure_account(service, f"PANOPTES {service}", target)]
    steps += [project_role(f"serviceAccount:{target.account(service)}", role, target) for role in deployment.roles]
    steps.append(Stage("deploy", service, source))
    if deployment.platform == FUNCTION:
        steps += function_steps(service, deployment, target, source)
    else:
        steps += cloud_run_steps(service, deployment, target, source)
    return steps


def reconcile_steps(target: Target) -> list[Step]:
    """A Cloud Scheduler job that runs reconcile --fix (compress-fits' POST /reconcile) on a cron."""
    url = push_url(RECONCILER, target)
    job = ("--schedule=" + target.reconcile_schedule, f"--uri={url}/reconcile", "--http-method=POST",
           f"--oidc-service-account-email={target.account(PUSH_INVOKER)}", f"--oidc-token-audience={url}",
           f"--attempt-deadline={MAX_ACK_DEADLINE}s", "--time-zone=Etc/UTC")
    return [
        Note("deploy", f"reconcile --fix on schedule {target.reconcile_schedule!r} (UTC): Cloud Scheduler job "
                       f"{RECONCILE_JOB} -> {url}/reconcile"),
        Run("apis", ("gcloud", "services", "enable", "cloudscheduler.googleapis.com", *target.flags())),
        # reconcile sends the files it finds to their topics again.
        project_role(f"serviceAccount:{target.account(RECONCILER)}", "roles/pubsub.publisher", target),
        Ensure("deploy",
               ("gcloud", "scheduler", "jobs", "describe", RECONCILE_JOB, *target.flags(),
                f"--location={target.region}"),
               ("gcloud", "scheduler", "jobs", "create", "http", RECONCILE_JOB, *target.flags(),
                f"--location={target.region}", *job),
               ("gcloud", "scheduler", "jobs", "update", "http", RECONCILE_JOB, *target.flags(),
                f"--location={target.region}", *job)),
    ]


SWEEP_SERVICE = "process-observation"
SWEEP_JOB = "panoptes-process-pending"
SWEEP_SCHEDULE = "*/20 * * * *"  # every 20 minutes; an observation waits out a 60-minute quiet period anyway


def sweep_steps(target: Target) -> list[Step]:
    """A Cloud Scheduler job calling process-observation's POST /sweep (``process --pending``)."""
    url = push_url(SWEEP_SERVICE, target)
    job = ("--schedule=" + SWEEP_SCHEDULE, f"--uri={url}/sweep", "--http-method=POST",
           f"--oidc-service-account-email={target.account(PUSH_INVOKER)}", f"--oidc-token-audience={url}",
           f"--attempt-deadline={MAX_ACK_DEADLINE}s", "--time-zone=Etc/UTC")
    return [
        Note("deploy", f"process --pending on schedule {SWEEP_SCHEDULE!r} (UTC): Cloud Scheduler job "
                       f"{SWEEP_JOB} -> {url}/sweep"),
        Ensure("deploy",
               ("gcloud", "scheduler", "jobs", "describe", SWEEP_JOB, *target.flags(),
                f"--location={target.region}"),
               ("gcloud", "scheduler", "jobs", "create", "http", SWEEP_JOB, *target.flags(),
                f"--location={target.region}", *job),
               ("gcloud", "scheduler", "jobs", "update", "http", SWEEP_JOB, *target.flags(),
                f"--location={target.region}", *job)),
    ]


def plan(services: Iterable[str], target: Target, only: set[str] | None = None) -> list[Step]:
    """The steps that deploy ``services`` in order, each once; ``only`` keeps those categories."""
    steps: list[Step] = []
    seen: set[Step] = set()
    services = list(services)
    scheduled = reconcile_steps(target) if target.reconcile_schedule else []
    if SWEEP_SERVICE in services:
        scheduled += sweep_steps(target)
    for step in (common_steps(target) + [step for service in services for step in service_steps(service, target)]
                 + scheduled):
        if step not in seen:
            seen.add(step)
            steps.append(step)
    if only:
        kept = [step for step in steps if step.category in only or isinstance(step, Note)]
        needed = set().union(*(step.variables() for step in kept)) if kept else set()
        # Keep the captures the kept steps read, and those the captures read, in order.
        for step in reversed(steps):
            if isinstance(step, Capture) and step.variable in needed:
                needed |= step.variables()
        steps = [step for step in steps if step in kept or (isinstance(step, Capture) and step.variable in needed)]
    return steps


# --- running -----------------------------------------------------------------------------

class Runner:
    """Runs the steps from the repository root, printing each as it goes."""

    def __init__(self, root: Path, echo: Callable[[str], None] = print):
        self.root = root
        self.echo = echo
        self.values: dict[str, str] = {}

    def _expand(self, command: tuple[str, ...]) -> list[str]:
        def value(match: re.Match) -> str:
            name = match.group(1)
            if name not in self.values:
                raise DeployError(f"${{{name}}} is used before it is known")
            return self.values[name]

        return [_VARIABLE.sub(value, argument) for argument in command]

    def _call(self, command: tuple[str, ...], quiet: bool = False, capture: bool = False) -> subprocess.CompletedProcess:
        expanded = self._expand(command)
        if not shutil.which(expanded[0]):
            raise DeployError(f"{expanded[0]} is not installed (https://cloud.google.com/sdk/docs/install)")
        return subprocess.run(
            expanded, cwd=self.root, text=True, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture or quiet else None,
            stderr=subprocess.DEVNULL if quiet else None,
        )

    def _must(self, command: tuple[str, ...], capture: bool = False) -> str:
        result = self._call(command, capture=capture)
        if result.returncode != 0:
            raise CommandFailed(f"failed with exit status {result.returncode}: {render(command)}")
        return (result.stdout or "").strip()

    def run(self, step: Step) -> None:
        self.echo(("" if isinstance(step, (Note, Stage)) else "+ ") + step.render())
        if isinstance(step, Run):
            self._must(step.command)
        elif isinstance(step, Ensure):
            exists = self._call(step.check, quiet=True).returncode == 0
            if not exists:
                self._must(step.create)
            elif step.update:
                self._must(step.update)
        elif isinstance(step, WhenPrinted):
            if self._must(step.probe, capture=True):
                self._must(step.command)
        elif isinstance(step, Capture):
            value = self._must(step.command, capture=True)
            if not value:
                raise CommandFailed(f"{render(step.command)} printed nothing; {step.variable} is needed")
            self.values[step.variable] = value
        elif isinstance(step, Stage):
            directory = self.root / step.directory
            if directory.exists():
                shutil.rmtree(directory)  # ours: bin/deploy writes only under build/deploy/
            stage(step.service, directory, self.root)


# --- the command line --------------------------------------------------------------------

def parse_services(names: list[str]) -> list[str]:
    requested = [name for argument in names for name in argument.replace(",", " ").split()]
    if not requested:
        raise DeployError(f"name a service or 'all'; services: {', '.join(SERVICES)}")
    if "all" in requested:
        if requested != ["all"]:
            raise DeployError("'all' deploys every service; name no other with it")
        return list(SERVICES)
    unknown = [name for name in requested if name not in SERVICES]
    if unknown:
        raise DeployError(f"unknown service{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                          f"valid: {', '.join(SERVICES)}, or all")
    return list(dict.fromkeys(requested))


PROJECT_ID = re.compile(r"[a-z][a-z0-9-]{4,28}[a-z0-9]")
REGION = re.compile(r"[a-z]+-[a-z]+[0-9]+")


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bin/deploy",
        description="Deploy PANOPTES Network services to Google Cloud, with the topics, subscriptions, "
                    "dead-letter topic, service accounts and IAM bindings each needs. Safe to repeat.",
        epilog=f"services: {', '.join(SERVICES)}",
    )
    parser.add_argument("services", nargs="+", metavar="SERVICE", help="a service name, several, or 'all'")
    parser.add_argument("--project", help="Google Cloud project id (default: $GOOGLE_CLOUD_PROJECT)")
    parser.add_argument("--region", help=f"region (default: $GOOGLE_CLOUD_REGION, else {DEFAULT_REGION})")
    parser.add_argument("--dry-run", action="store_true", help="print every command, in order, and run nothing")
    parser.add_argument("--create-buckets", action="store_true",
                        help="also create the four buckets when absent (in --region)")
    parser.add_argument("--raw-bucket-location", help="location of the raw bucket, where its Eventarc trigger "
                                                      "must be (default: the region)")
    parser.add_argument("--project-number", help="skip looking the project number up")
    parser.add_argument("--only", action="append", choices=("apis", "iam", "pubsub", "storage", "deploy"),
                        help="run only these kinds of step (repeatable), e.g. --only pubsub to re-apply "
                             "subscription settings")
    parser.add_argument("--schedule-reconcile", metavar="CRON",
                        help="also run `panoptes-network reconcile --fix` on this schedule (UTC), e.g. "
                             "'17 */6 * * *', through compress-fits (deployed now or before)")
    parser.add_argument("--stage", metavar="DIR", type=Path,
                        help="write each service's deployable source to DIR/SERVICE and stop")
    return parser


def target_from(arguments: argparse.Namespace, settings: Settings) -> Target:
    # Never the library's default project: deploying is done to a project someone named.
    project = arguments.project or os.environ.get("GOOGLE_CLOUD_PROJECT")
    if not project:
        raise DeployError("which project? give --project P (or set GOOGLE_CLOUD_PROJECT)")
    region = arguments.region or os.environ.get("GOOGLE_CLOUD_REGION") or DEFAULT_REGION
    if not PROJECT_ID.fullmatch(project):
        raise DeployError(f"{project!r} is not a Google Cloud project id")
    if not REGION.fullmatch(region):
        raise DeployError(f"{region!r} is not a region (like {DEFAULT_REGION})")
    if arguments.schedule_reconcile is not None and len(arguments.schedule_reconcile.split()) != 5:
        raise DeployError(f"--schedule-reconcile {arguments.schedule_reconcile!r} is not a cron schedule "
                          "(five fields, e.g. '17 */6 * * *')")
    if arguments.project_number and not re.fullmatch(r"[0-9]+", arguments.project_number):
        raise DeployError(f"--project-number {arguments.project_number!r} is not a number")
    return Target(project=project, region=region, settings=settings, policy=DeliveryPolicy.from_env(),
                  create_buckets=arguments.create_buckets, raw_bucket_location=arguments.raw_bucket_location,
                  project_number=arguments.project_number, reconcile_schedule=arguments.schedule_reconcile)


def main(argv: list[str] | None = None, root: Path | None = None) -> int:
    arguments = argument_parser().parse_args(argv)
    root = root or repository_root()
    try:
        services = parse_services(arguments.services)
        missing = [reason for reason in (missing_reason(service, root) for service in services) if reason]
        if missing:
            raise DeployError("; ".join(missing) + ": nothing to deploy")
        if arguments.stage:
            for service in services:
                print(stage(service, arguments.stage / service, root))
            return 0
        steps = plan(services, target_from(arguments, current_settings()), set(arguments.only or ()))
        if arguments.dry_run:
            for step in steps:
                print(step.render())
            return 0
        runner = Runner(root)
        for step in steps:
            runner.run(step)
    except (DeployError, StagingError) as error:
        print(f"bin/deploy: {error}", file=sys.stderr)
        return 1 if isinstance(error, CommandFailed) else 2
    print(f"bin/deploy: deployed {', '.join(services)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
