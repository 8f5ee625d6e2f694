"""feedback, transcripts and the merchant console

Revision ID: 0010
Revises: 0009

Full-text search over feedback.search_text: an FTS5 table kept by triggers on SQLite, a GIN index on its
tsvector on PostgreSQL (bot/feedback/search.py queries whichever is there).
"""
from alembic import op
import sqlalchemy as sa
import bot.models.base


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('login_attempts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('client', sa.String(length=64), nullable=False),
    sa.Column('attempted_at', bot.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_login_attempts'))
    )
    with op.batch_alter_table('login_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_login_attempts_attempted_at'), ['attempted_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_login_attempts_client'), ['client'], unique=False)
        batch_op.create_index(batch_op.f('ix_login_attempts_email'), ['email'], unique=False)

    op.create_table('merchants',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('role', sa.String(length=8), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', bot.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_login_at', bot.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_merchants')),
    sa.UniqueConstraint('email', name=op.f('uq_merchants_email'))
    )
    op.create_table('console_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('merchant_id', sa.Integer(), nullable=False),
    sa.Column('csrf_token', sa.String(length=64), nullable=False),
    sa.Column('created_at', bot.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', bot.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', bot.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_console_sessions_merchant_id_merchants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_console_sessions')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_console_sessions_token_hash'))
    )
    with op.batch_alter_table('console_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_console_sessions_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_console_sessions_merchant_id'), ['merchant_id'], unique=False)

    op.create_table('transcripts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('order_id', sa.Integer(), nullable=True),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('sender_id', sa.String(length=255), nullable=False),
    sa.Column('reason', sa.String(length=16), nullable=False),
    sa.Column('turns', sa.JSON(), nullable=False),
    sa.Column('redacted', sa.Boolean(), nullable=False),
    sa.Column('created_at', bot.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_transcripts_customer_id_customers'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_transcripts_order_id_orders'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_transcripts'))
    )
    with op.batch_alter_table('transcripts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_transcripts_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_transcripts_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_transcripts_order_id'), ['order_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_transcripts_sender_id'), ['sender_id'], unique=False)

    op.create_table('feedback',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('order_id', sa.Integer(), nullable=True),
    sa.Column('transcript_id', sa.Integer(), nullable=True),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('sender_id', sa.String(length=255), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('score', sa.Integer(), nullable=False),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('sentiment', sa.String(length=8), nullable=True),
    sa.Column('topics', sa.JSON(), nullable=False),
    sa.Column('search_text', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('goodwill_points', sa.Integer(), nullable=False),
    sa.Column('handoff_request_id', sa.Integer(), nullable=True),
    sa.Column('created_at', bot.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', bot.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_feedback_customer_id_customers'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['handoff_request_id'], ['handoff_requests.id'], name=op.f('fk_feedback_handoff_request_id_handoff_requests'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_feedback_order_id_orders'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['transcript_id'], ['transcripts.id'], name=op.f('fk_feedback_transcript_id_transcripts'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_feedback'))
    )
    with op.batch_alter_table('feedback', schema=None) as batch_op:
        batch_op.create_index('ix_feedback_channel_created_at', ['channel', 'created_at'], unique=False)
        batch_op.create_index('ix_feedback_created_at_id', ['created_at', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_feedback_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index('ix_feedback_kind_score', ['kind', 'score'], unique=False)
        batch_op.create_index('ix_feedback_created_at_kind_score', ['created_at', 'kind', 'score'], unique=False)
        batch_op.create_index(batch_op.f('ix_feedback_order_id'), ['order_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_feedback_sender_id'), ['sender_id'], unique=False)
        batch_op.create_index('ix_feedback_status_created_at', ['status', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_feedback_transcript_id'), ['transcript_id'], unique=False)

    op.create_table('feedback_notes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('feedback_id', sa.Integer(), nullable=False),
    sa.Column('merchant_id', sa.Integer(), nullable=True),
    sa.Column('author', sa.String(length=320), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('created_at', bot.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['feedback_id'], ['feedback.id'], name=op.f('fk_feedback_notes_feedback_id_feedback'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_feedback_notes_merchant_id_merchants'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_feedback_notes'))
    )
    with op.batch_alter_table('feedback_notes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_feedback_notes_feedback_id'), ['feedback_id'], unique=False)

    op.create_table('feedback_topics',
    sa.Column('feedback_id', sa.Integer(), nullable=False),
    sa.Column('topic', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['feedback_id'], ['feedback.id'], name=op.f('fk_feedback_topics_feedback_id_feedback'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('feedback_id', 'topic', name=op.f('pk_feedback_topics'))
    )
    with op.batch_alter_table('feedback_topics', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_feedback_topics_topic'), ['topic'], unique=False)

    with op.batch_alter_table('handoff_requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('transcript_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('closed_at', bot.models.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('closed_by', sa.String(length=320), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_handoff_requests_transcript_id_transcripts'), 'transcripts', ['transcript_id'], ['id'], ondelete='SET NULL')

    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE INDEX ix_feedback_search ON feedback USING gin (to_tsvector('simple', search_text))")
    else:
        # External content: the words are indexed, the text itself stays in feedback only.
        op.execute("CREATE VIRTUAL TABLE feedback_search USING fts5(search_text, content='feedback', "
                   "content_rowid='id', tokenize='unicode61 remove_diacritics 2')")
        op.execute("CREATE TRIGGER feedback_search_insert AFTER INSERT ON feedback BEGIN "
                   "INSERT INTO feedback_search(rowid, search_text) VALUES (new.id, new.search_text); END")
        op.execute("CREATE TRIGGER feedback_search_delete AFTER DELETE ON feedback BEGIN "
                   "INSERT INTO feedback_search(feedback_search, rowid, search_text) "
                   "VALUES ('delete', old.id, old.search_text); END")
        op.execute("CREATE TRIGGER feedback_search_update AFTER UPDATE OF search_text ON feedback BEGIN "
                   "INSERT INTO feedback_search(feedback_search, rowid, search_text) "
                   "VALUES ('delete', old.id, old.search_text); "
                   "INSERT INTO feedback_search(rowid, search_text) VALUES (new.id, new.search_text); END")



def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_feedback_search")
    else:
        for trigger in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER feedback_search_{trigger}")
        op.execute("DROP TABLE feedback_search")
    with op.batch_alter_table('handoff_requests', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_handoff_requests_transcript_id_transcripts'), type_='foreignkey')
        batch_op.drop_column('closed_by')
        batch_op.drop_column('closed_at')
        batch_op.drop_column('transcript_id')

    with op.batch_alter_table('feedback_topics', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_feedback_topics_topic'))

    op.drop_table('feedback_topics')
    with op.batch_alter_table('feedback_notes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_feedback_notes_feedback_id'))

    op.drop_table('feedback_notes')
    with op.batch_alter_table('feedback', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_feedback_transcript_id'))
        batch_op.drop_index('ix_feedback_status_created_at')
        batch_op.drop_index(batch_op.f('ix_feedback_sender_id'))
        batch_op.drop_index(batch_op.f('ix_feedback_order_id'))
        batch_op.drop_index('ix_feedback_kind_score')
        batch_op.drop_index('ix_feedback_created_at_kind_score')
        batch_op.drop_index(batch_op.f('ix_feedback_customer_id'))
        batch_op.drop_index('ix_feedback_created_at_id')
        batch_op.drop_index('ix_feedback_channel_created_at')

    op.drop_table('feedback')
    with op.batch_alter_table('transcripts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_transcripts_sender_id'))
        batch_op.drop_index(batch_op.f('ix_transcripts_order_id'))
        batch_op.drop_index(batch_op.f('ix_transcripts_customer_id'))
        batch_op.drop_index(batch_op.f('ix_transcripts_created_at'))

    op.drop_table('transcripts')
    with op.batch_alter_table('console_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_console_sessions_merchant_id'))
        batch_op.drop_index(batch_op.f('ix_console_sessions_expires_at'))

    op.drop_table('console_sessions')
    op.drop_table('merchants')
    with op.batch_alter_table('login_attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_login_attempts_email'))
        batch_op.drop_index(batch_op.f('ix_login_attempts_client'))
        batch_op.drop_index(batch_op.f('ix_login_attempts_attempted_at'))

    op.drop_table('login_attempts')
