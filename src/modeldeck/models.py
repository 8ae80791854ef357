"""Every table, imported once so the metadata is complete (migrations, tests)."""

from modeldeck.auth.tables import ApiToken, User
from modeldeck.db import Base
from modeldeck.deployments.tables import Deployment, DeploymentClient, DeploymentVersion
from modeldeck.groups.tables import Group, group_members
from modeldeck.instance_types.tables import InstanceType, instance_type_groups
from modeldeck.secrets.tables import ImagePullSecret

__all__ = [
    "ApiToken",
    "Base",
    "Deployment",
    "DeploymentClient",
    "DeploymentVersion",
    "Group",
    "ImagePullSecret",
    "InstanceType",
    "User",
    "group_members",
    "instance_type_groups",
]
