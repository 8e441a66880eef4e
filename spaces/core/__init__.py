"""What every room stands on: settings, the database and its models and
migrations, errors with their HTTP status, the plan catalogue, the audit log,
passwords, mail, metrics and the formats customers read.

May import: ``spaces.sat`` only."""
