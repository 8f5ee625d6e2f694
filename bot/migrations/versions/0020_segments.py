"""segments: saved segment filters; each customer's order totals kept by triggers on orders; the indexes
segment counts need at a million customers

Revision ID: 0020
Revises: 0019

customer_order_stats is recomputed for a customer from their orders whenever one of their orders is
inserted, changed (customer, status, totals, date) or deleted. A trigger rather than application code:
orders are written by the store API, webhooks, importers and bulk loads, and every one of them keeps the
totals exact. On PostgreSQL the trigger first takes the customer's row lock (the same lock a points change
takes), so two orders of one customer committed at once cannot each recompute without the other.
"""
from alembic import op
import sqlalchemy as sa
import bot.models.base

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

UTC = bot.models.base.UTCDateTime(timezone=True)

# One customer's totals, from their orders; only while the customer exists (an erasure cascades to orders).
_TOTALS = """
    SELECT {target}, count(*), min(placed_at), max(placed_at), coalesce(sum(total - refunded_total), 0)
    FROM orders WHERE customer_id = {target} AND status <> 'cancelled'
"""

BACKFILL = """
INSERT INTO customer_order_stats (customer_id, order_count, first_order_at, last_order_at, lifetime_spend)
SELECT customer_id, count(*), min(placed_at), max(placed_at), coalesce(sum(total - refunded_total), 0)
FROM orders WHERE status <> 'cancelled' GROUP BY customer_id
"""

_SQLITE_REFRESH = """
    INSERT OR REPLACE INTO customer_order_stats
        (customer_id, order_count, first_order_at, last_order_at, lifetime_spend)
    SELECT * FROM ({totals}) WHERE EXISTS (SELECT 1 FROM customers WHERE id = {target});
"""

SQLITE_TRIGGERS = {
    "orders_stats_after_insert": "AFTER INSERT ON orders BEGIN {new} END",
    "orders_stats_after_update": (
        "AFTER UPDATE OF customer_id, total, refunded_total, status, placed_at ON orders BEGIN {new} {old} END"),
    "orders_stats_after_delete": "AFTER DELETE ON orders BEGIN {old} END",
}

POSTGRES_FUNCTIONS = """
CREATE FUNCTION refresh_customer_order_stats(target integer) RETURNS void AS $$
BEGIN
    PERFORM 1 FROM customers WHERE id = target FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    INSERT INTO customer_order_stats (customer_id, order_count, first_order_at, last_order_at, lifetime_spend)
    """ + _TOTALS.format(target="target") + """
    ON CONFLICT (customer_id) DO UPDATE SET order_count = EXCLUDED.order_count,
        first_order_at = EXCLUDED.first_order_at, last_order_at = EXCLUDED.last_order_at,
        lifetime_spend = EXCLUDED.lifetime_spend;
END
$$ LANGUAGE plpgsql;

CREATE FUNCTION orders_keep_customer_order_stats() RETURNS trigger AS $$
BEGIN
    IF TG_OP <> 'DELETE' THEN
        PERFORM refresh_customer_order_stats(NEW.customer_id);
    END IF;
    IF TG_OP = 'DELETE' OR OLD.customer_id <> NEW.customer_id THEN
        PERFORM refresh_customer_order_stats(OLD.customer_id);
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER orders_customer_order_stats
    AFTER INSERT OR DELETE OR UPDATE OF customer_id, total, refunded_total, status, placed_at ON orders
    FOR EACH ROW EXECUTE FUNCTION orders_keep_customer_order_stats();
"""


def upgrade() -> None:
    op.create_table(
        "saved_segments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("filter", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=320), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "customer_order_stats",
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("order_count", sa.Integer(), nullable=False),
        sa.Column("first_order_at", UTC, nullable=True),
        sa.Column("last_order_at", UTC, nullable=True),
        sa.Column("lifetime_spend", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("customer_id"),
    )
    op.create_index("ix_customer_order_stats_last_order_at", "customer_order_stats", ["last_order_at"])
    op.create_index("ix_customer_order_stats_order_count", "customer_order_stats", ["order_count"])
    op.create_index("ix_customer_order_stats_lifetime_spend", "customer_order_stats", ["lifetime_spend"])
    # Segment conditions on customers' own columns, the latest feedback of a kind, and falling probabilities.
    op.create_index("ix_customers_tier_name", "customers", ["tier_name"])
    op.create_index("ix_customers_points_balance", "customers", ["points_balance"])
    op.create_index("ix_feedback_customer_kind_id", "feedback", ["customer_id", "kind", "id"])
    op.create_index("ix_purchase_predictions_previous_probability", "purchase_predictions",
                    ["previous_probability"])
    op.execute(BACKFILL)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRES_FUNCTIONS)
    else:
        new = _SQLITE_REFRESH.format(totals=_TOTALS.format(target="NEW.customer_id"), target="NEW.customer_id")
        old = _SQLITE_REFRESH.format(totals=_TOTALS.format(target="OLD.customer_id"), target="OLD.customer_id")
        for name, body in SQLITE_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {body.format(new=new, old=old)}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER orders_customer_order_stats ON orders")
        op.execute("DROP FUNCTION orders_keep_customer_order_stats()")
        op.execute("DROP FUNCTION refresh_customer_order_stats(integer)")
    else:
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER {name}")
    op.drop_index("ix_purchase_predictions_previous_probability", table_name="purchase_predictions")
    op.drop_index("ix_feedback_customer_kind_id", table_name="feedback")
    op.drop_index("ix_customers_points_balance", table_name="customers")
    op.drop_index("ix_customers_tier_name", table_name="customers")
    op.drop_table("customer_order_stats")
    op.drop_table("saved_segments")
