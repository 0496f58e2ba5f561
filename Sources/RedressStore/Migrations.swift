/// Versioned schema migrations, applied in order, each once, each in its own transaction.
/// Never edit a migration that has shipped: add the next one.
public struct Migration: Sendable {
    public var version: Int
    public var name: String
    public var sql: String
}

public enum Migrations {
    public static let all: [Migration] = [
        Migration(version: 1, name: "foundation", sql: foundation),
        Migration(version: 2, name: "case handling", sql: caseHandling),
        Migration(version: 3, name: "notifications and return visits", sql: notificationsAndVisits),
        Migration(version: 4, name: "case workbench", sql: workbench),
        Migration(version: 5, name: "console and customer pages", sql: consoleAndCustomerPages),
        Migration(version: 6, name: "dead letters", sql: deadLetters),
        Migration(version: 7, name: "notifications by unit", sql: notificationsByUnit),
        Migration(version: 8, name: "typical cases", sql: typicalCases),
        Migration(version: 9, name: "survey links at rest", sql: surveyLinksAtRest),
        Migration(version: 10, name: "periodic reports", sql: periodicReports),
        Migration(version: 11, name: "oversight duties", sql: oversightDuties),
        Migration(version: 12, name: "relay wake-up by writer", sql: relayWakeUpByWriter),
    ]

    /// The database roles the services use; a cluster-level set-up (scripts/lib.sh creates them; a
    /// production DBA does the same) that migrations only grant to.
    public static let serviceRole = "redress_service"
    public static let staffRole = "redress_staff"

    static let foundation = #"""
    -- The organisation tree. `path` is the materialised chain of codes from HQ ('HQ/GD/GD-SZ'):
    -- "this unit and below" is `path = $1 OR path LIKE $1 || '/%'`, served by the text_pattern_ops index.
    CREATE TABLE org_units (
        code          text PRIMARY KEY CHECK (code ~ '^[A-Z0-9][A-Z0-9-]{1,31}$'),
        parent_code   text REFERENCES org_units(code),
        level         text NOT NULL CHECK (level IN ('hq', 'province', 'city', 'county')),
        name          text NOT NULL,
        path          text NOT NULL UNIQUE,
        region        text NOT NULL DEFAULT 'CN',
        -- Province setting: claims and underwriting complaints are handled at province level (核保、核赔集中).
        claims_centralised boolean NOT NULL DEFAULT false,
        CHECK ((level = 'hq') = (parent_code IS NULL))
    );
    CREATE INDEX org_units_path_prefix ON org_units (path text_pattern_ops);

    CREATE TABLE staff (
        id          text PRIMARY KEY,
        name        text NOT NULL,
        org_unit    text NOT NULL REFERENCES org_units(code),
        role        text NOT NULL CHECK (role IN ('agent', 'supervisor', 'committee', 'auditor', 'admin')),
        skills      text[] NOT NULL DEFAULT '{}',
        capacity    integer NOT NULL DEFAULT 20 CHECK (capacity > 0),
        open_cases  integer NOT NULL DEFAULT 0 CHECK (open_cases >= 0),
        active      boolean NOT NULL DEFAULT true,
        available   boolean NOT NULL DEFAULT true,
        last_assigned_at timestamptz
    );
    CREATE INDEX staff_unit_role ON staff (org_unit, role) WHERE active;

    -- Per-branch, per-day sequence behind complaint numbers (GD-SZ-20261122-000123).
    CREATE TABLE complaint_number_sequences (
        branch   text NOT NULL,
        day      text NOT NULL,
        last     integer NOT NULL,
        PRIMARY KEY (branch, day)
    );

    -- The system of record. Full personal data lives only here.
    CREATE TABLE complaints (
        id                  uuid PRIMARY KEY,
        number              text NOT NULL UNIQUE,
        channel             text NOT NULL,
        external_ref        text NOT NULL,
        received_at         timestamptz NOT NULL,
        registered_at       timestamptz NOT NULL DEFAULT now(),
        promised_reply_by   timestamptz NOT NULL,
        branch              text NOT NULL REFERENCES org_units(code),
        customer_name       text NOT NULL,
        customer_phone      text NOT NULL,
        customer_id_number  text,
        customer_key        text NOT NULL,
        customer_flags      text[] NOT NULL DEFAULT '{}',
        policy_number       text,
        claim_number        text,
        claim_stage         text,
        subject             text NOT NULL,
        content             text NOT NULL,
        regulator_case_number text,
        regulator_deadline  timestamptz,
        -- 重复投诉: an open complaint of the same customer about the same policy that this one repeats.
        repeat_of           uuid REFERENCES complaints(id),
        -- Staff with a conflict of interest (sold the policy, handled the claim): never the owner.
        policy_agent        text,
        claim_handler       text,
        -- Evidence by reference: [{name, uri, contentType, size}].
        attachments         jsonb NOT NULL DEFAULT '[]',
        category            text,
        priority            text,
        handling_unit       text REFERENCES org_units(code),
        assignee            text REFERENCES staff(id),
        status              text NOT NULL DEFAULT 'registered',
        liability           text,
        responsible_link    text,
        cause_code          text,
        version             integer NOT NULL DEFAULT 1,
        updated_at          timestamptz NOT NULL DEFAULT now(),
        -- The same (channel, external reference) twice is one complaint.
        UNIQUE (channel, external_ref)
    );
    CREATE INDEX complaints_unit_status ON complaints (handling_unit, status);
    CREATE INDEX complaints_assignee_open ON complaints (assignee) WHERE status <> 'closed';
    CREATE INDEX complaints_customer_key ON complaints (customer_key);
    -- Finding the open complaint a new one repeats.
    CREATE INDEX complaints_open_by_customer_policy ON complaints (customer_key, policy_number) WHERE status <> 'closed';

    -- Append-only audit trail of every case change.
    CREATE TABLE case_events (
        id            bigserial PRIMARY KEY,
        complaint_id  uuid NOT NULL REFERENCES complaints(id),
        event_id      uuid NOT NULL UNIQUE,
        at            timestamptz NOT NULL DEFAULT now(),
        actor         text NOT NULL,
        actor_role    text,
        actor_unit    text,
        action        text NOT NULL,
        from_status   text,
        to_status     text NOT NULL,
        reason        text,
        payload       jsonb NOT NULL DEFAULT '{}'
    );
    CREATE INDEX case_events_complaint ON case_events (complaint_id, id);

    CREATE FUNCTION case_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'case_events is an append-only audit trail: % is not allowed', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END $$;
    CREATE TRIGGER case_events_no_update BEFORE UPDATE OR DELETE OR TRUNCATE ON case_events
        FOR EACH STATEMENT EXECUTE FUNCTION case_events_append_only();

    -- SLA clocks: one row per complaint and kind. Firing marks warned_at / breached_at exactly once.
    CREATE TABLE sla_clocks (
        complaint_id  uuid NOT NULL REFERENCES complaints(id),
        kind          text NOT NULL,
        started_at    timestamptz NOT NULL,
        warn_at       timestamptz NOT NULL,
        due_at        timestamptz NOT NULL,
        paused_at     timestamptz,
        warned_at     timestamptz,
        breached_at   timestamptz,
        stopped_at    timestamptz,
        PRIMARY KEY (complaint_id, kind)
    );
    -- The scan for due clocks reads only running clocks, in due order: cost follows what is due.
    CREATE INDEX sla_clocks_warn_due ON sla_clocks (warn_at) WHERE warned_at IS NULL AND stopped_at IS NULL AND paused_at IS NULL;
    CREATE INDEX sla_clocks_breach_due ON sla_clocks (due_at) WHERE breached_at IS NULL AND stopped_at IS NULL AND paused_at IS NULL;

    -- Transactional outbox. `lane` = hash(key) mod 64: a relay publishes a lane only while it holds
    -- that lane's advisory lock, so events of one complaint leave in commit order even with several relays.
    -- A row is deleted in the transaction that saw it delivered: rewriting the payload to mark it
    -- published doubled the write-ahead log, and the topic is the record of what was published.
    CREATE TABLE outbox (
        id            bigserial PRIMARY KEY,
        lane          smallint NOT NULL,
        event_id      uuid NOT NULL,
        topic         text NOT NULL,
        key           text NOT NULL,
        event_type    text NOT NULL,
        payload       bytea NOT NULL,
        created_at    timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX outbox_pending ON outbox (lane, id);

    -- One NOTIFY per inserting statement wakes the relays; the payload carries nothing.
    CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('redress_outbox', '');
        RETURN NULL;
    END $$;
    CREATE TRIGGER outbox_inserted AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

    -- Inbox: an event id handled once per consumer group.
    CREATE TABLE inbox (
        consumer_group text NOT NULL,
        event_id       uuid NOT NULL,
        handled_at     timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (consumer_group, event_id)
    );
    -- Entries outlive the topics' retention (a redelivery older than that cannot come), then are purged.
    CREATE INDEX inbox_handled_at ON inbox (handled_at);

    -- Notifications to customers and staff; one per (event, recipient, channel).
    CREATE TABLE notifications (
        id            uuid PRIMARY KEY,
        complaint_id  uuid NOT NULL REFERENCES complaints(id),
        event_id      uuid NOT NULL,
        recipient     text NOT NULL,
        channel       text NOT NULL,
        template      text NOT NULL,
        language      text NOT NULL DEFAULT 'zh-CN',
        status        text NOT NULL DEFAULT 'pending',
        created_at    timestamptz NOT NULL DEFAULT now(),
        UNIQUE (event_id, recipient, channel)
    );
    CREATE INDEX notifications_complaint ON notifications (complaint_id);

    -- Return visits (回访) scheduled on closure.
    CREATE TABLE surveys (
        id            uuid PRIMARY KEY,
        complaint_id  uuid NOT NULL REFERENCES complaints(id),
        visit         text NOT NULL,
        due_at        timestamptz NOT NULL,
        status        text NOT NULL DEFAULT 'scheduled',
        UNIQUE (complaint_id, visit)
    );
    """#

    static let caseHandling = #"""
    DO $$
    BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'redress_service')
           OR NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'redress_staff') THEN
            RAISE EXCEPTION 'roles redress_service and redress_staff are missing: create them first (see README, "Database roles")';
        END IF;
    END $$;

    -- The handling unit's org path, kept on the row so visibility ("this unit and below") is one
    -- indexed prefix test, in queries and in the row-level security policy alike.
    ALTER TABLE complaints
        ADD COLUMN unit_path        text,
        ADD COLUMN reopened_from    uuid REFERENCES complaints(id),
        ADD COLUMN decision_days    integer NOT NULL DEFAULT 15 CHECK (decision_days IN (15, 30, 60)),
        ADD COLUMN spot_check       boolean NOT NULL DEFAULT false,
        ADD COLUMN committee_status text CHECK (committee_status IN ('referred', 'ruled')),
        ADD COLUMN next_contact_at  timestamptz,
        ADD COLUMN first_contact_at timestamptz,
        ADD COLUMN closed_at        timestamptz;
    UPDATE complaints c SET unit_path = u.path FROM org_units u WHERE u.code = COALESCE(c.handling_unit, c.branch);
    ALTER TABLE complaints ALTER COLUMN unit_path SET NOT NULL;

    CREATE FUNCTION complaints_unit_path() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        SELECT path INTO NEW.unit_path FROM org_units WHERE code = COALESCE(NEW.handling_unit, NEW.branch);
        RETURN NEW;
    END $$;
    CREATE TRIGGER complaints_unit_path BEFORE INSERT OR UPDATE OF handling_unit, branch ON complaints
        FOR EACH ROW EXECUTE FUNCTION complaints_unit_path();
    -- A unit moved in the tree takes its cases (and its children's) along.
    CREATE FUNCTION org_units_moved() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE complaints SET unit_path = NEW.path || substr(unit_path, length(OLD.path) + 1)
        WHERE unit_path = OLD.path OR unit_path LIKE OLD.path || '/%';
        RETURN NULL;
    END $$;
    CREATE TRIGGER org_units_moved AFTER UPDATE OF path ON org_units
        FOR EACH ROW WHEN (OLD.path IS DISTINCT FROM NEW.path) EXECUTE FUNCTION org_units_moved();

    -- "My queue": an agent's open cases, soonest due first, read straight off the index.
    DROP INDEX complaints_assignee_open;
    CREATE INDEX complaints_assignee_queue ON complaints (assignee, promised_reply_by, id) WHERE status <> 'closed';
    -- A unit's queue: open cases in due order, filtered by the unit path prefix.
    CREATE INDEX complaints_open_due ON complaints (promised_reply_by, id) WHERE status <> 'closed';
    CREATE INDEX complaints_unit_path ON complaints (unit_path text_pattern_ops);
    CREATE INDEX complaints_policy_number ON complaints (policy_number) WHERE policy_number IS NOT NULL;
    CREATE INDEX complaints_claim_number ON complaints (claim_number) WHERE claim_number IS NOT NULL;

    -- Who read a case's full personal data, when, and why. Append-only like the case history.
    CREATE TABLE personal_data_reads (
        id            bigserial PRIMARY KEY,
        complaint_id  uuid NOT NULL REFERENCES complaints(id),
        reader        text NOT NULL,
        reader_role   text NOT NULL,
        reader_unit   text NOT NULL,
        purpose       text NOT NULL,
        at            timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX personal_data_reads_complaint ON personal_data_reads (complaint_id, at);

    CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '% is an append-only audit trail: % is not allowed', TG_TABLE_NAME, TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END $$;
    CREATE TRIGGER personal_data_reads_no_update BEFORE UPDATE OR DELETE OR TRUNCATE ON personal_data_reads
        FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

    -- Privileges. Services log in as redress_service: every table, but the audit trails only
    -- to read and append. The staff API switches to redress_staff for each request, under the
    -- row-level security policy below, with the caller's unit path in `redress.unit_path`.
    GRANT USAGE ON SCHEMA public TO redress_service, redress_staff;
    GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO redress_service;
    GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO redress_service, redress_staff;
    REVOKE UPDATE, DELETE, TRUNCATE ON case_events, personal_data_reads FROM redress_service;
    GRANT SELECT ON org_units, staff, notifications TO redress_staff;
    GRANT SELECT, UPDATE ON complaints TO redress_staff;
    GRANT UPDATE (open_cases) ON staff TO redress_staff;
    GRANT SELECT, INSERT ON case_events, personal_data_reads, outbox TO redress_staff;
    -- A reopened case is a new complaint row, inserted by the staff API.
    GRANT INSERT ON complaints TO redress_staff;
    -- Tables of later migrations are the services' too, unless a migration says otherwise.
    ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO redress_service;
    ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO redress_service;

    ALTER TABLE complaints ENABLE ROW LEVEL SECURITY;
    -- Services act for the whole organisation (intake, routing, the supervisor).
    CREATE POLICY complaints_services ON complaints TO redress_service USING (true) WITH CHECK (true);
    -- Staff see their unit and below, never a sibling or a parent; an unset scope sees nothing.
    CREATE POLICY complaints_staff_subtree ON complaints TO redress_staff
        USING (unit_path = current_setting('redress.unit_path', true) OR unit_path LIKE current_setting('redress.unit_path', true) || '/%')
        WITH CHECK (unit_path = current_setting('redress.unit_path', true) OR unit_path LIKE current_setting('redress.unit_path', true) || '/%');
    -- A case's history and its personal-data reads are visible exactly when the case is.
    ALTER TABLE case_events ENABLE ROW LEVEL SECURITY;
    CREATE POLICY case_events_services ON case_events TO redress_service USING (true) WITH CHECK (true);
    CREATE POLICY case_events_staff ON case_events TO redress_staff
        USING (EXISTS (SELECT 1 FROM complaints c WHERE c.id = complaint_id))
        WITH CHECK (EXISTS (SELECT 1 FROM complaints c WHERE c.id = complaint_id));
    ALTER TABLE personal_data_reads ENABLE ROW LEVEL SECURITY;
    CREATE POLICY personal_data_reads_services ON personal_data_reads TO redress_service USING (true) WITH CHECK (true);
    CREATE POLICY personal_data_reads_staff ON personal_data_reads TO redress_staff
        USING (EXISTS (SELECT 1 FROM complaints c WHERE c.id = complaint_id))
        WITH CHECK (EXISTS (SELECT 1 FROM complaints c WHERE c.id = complaint_id));
    """#

    static let notificationsAndVisits = #"""
    -- How the customer wants to hear from us ({email, wechatOpenId, preferredChannel, smsConsent, language}).
    ALTER TABLE complaints ADD COLUMN customer_contact jsonb NOT NULL DEFAULT '{"smsConsent": true, "language": "zh-CN"}';

    -- A notification carries its rendered text and its delivery: attempts, the next try, and the
    -- proof (gateway receipt, time) or the last error. `sending` marks a claimed attempt whose
    -- outcome is not known yet; it is retried with the same idempotency key.
    ALTER TABLE notifications
        ADD COLUMN subject            text,
        ADD COLUMN body               text NOT NULL DEFAULT '',
        ADD COLUMN attempts           integer NOT NULL DEFAULT 0,
        ADD COLUMN next_attempt_at    timestamptz NOT NULL DEFAULT now(),
        ADD COLUMN claimed_at         timestamptz,
        ADD COLUMN delivered_at       timestamptz,
        ADD COLUMN gateway_message_id text,
        ADD COLUMN last_error         text,
        ADD COLUMN address_masked     text;
    ALTER TABLE notifications ADD CONSTRAINT notifications_status
        CHECK (status IN ('pending', 'sending', 'retrying', 'delivered', 'failed', 'suppressed'));
    -- Staff-inbox rows are delivered when written (the row is the inbox); rows from before this
    -- migration said pending.
    UPDATE notifications SET status = 'delivered', delivered_at = created_at WHERE channel = 'staff_inbox';
    CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE status IN ('pending', 'sending', 'retrying');
    CREATE INDEX notifications_staff_inbox ON notifications (recipient, created_at) WHERE channel = 'staff_inbox';

    -- Return visits: a single-use link token (only its hash is kept), its expiry, and the answer.
    -- Unit, category and handler are those at closure, for satisfaction by each.
    ALTER TABLE surveys
        ADD COLUMN token_hash    bytea UNIQUE,
        ADD COLUMN invited_at    timestamptz,
        ADD COLUMN expires_at    timestamptz,
        ADD COLUMN answered_at   timestamptz,
        ADD COLUMN score         integer CHECK (score BETWEEN 1 AND 5),
        ADD COLUMN resolved      boolean,
        ADD COLUMN comment       text,
        ADD COLUMN handling_unit text,
        ADD COLUMN category      text,
        ADD COLUMN handler       text;
    ALTER TABLE surveys ADD CONSTRAINT surveys_status CHECK (status IN ('scheduled', 'invited', 'answered', 'expired'));
    CREATE INDEX surveys_due ON surveys (due_at) WHERE status = 'scheduled';
    CREATE INDEX surveys_expiring ON surveys (expires_at) WHERE status = 'invited';
    """#

    static let workbench = #"""
    -- 处理结果: the outcome text the customer is told at closure.
    ALTER TABLE complaints ADD COLUMN outcome text;
    -- The keyed hash of the customer's ID number (as customer_key is of the phone): a customer's
    -- complaints are matched by either, never by clear values.
    ALTER TABLE complaints ADD COLUMN customer_id_key text;
    CREATE INDEX complaints_customer_id_key ON complaints (customer_id_key) WHERE customer_id_key IS NOT NULL;
    CREATE INDEX complaints_reopened_from ON complaints (reopened_from) WHERE reopened_from IS NOT NULL;
    CREATE INDEX complaints_repeat_of ON complaints (repeat_of) WHERE repeat_of IS NOT NULL;
    -- 可能的二次投诉: the customer's complaint closed within the window (intake's setting) this one may follow.
    ALTER TABLE complaints ADD COLUMN possible_second_of uuid REFERENCES complaints(id);
    CREATE INDEX complaints_unassigned ON complaints (promised_reply_by, id) WHERE assignee IS NULL AND status <> 'closed';

    -- Staff: leave (from, to) besides availability; every change on record.
    ALTER TABLE staff ADD COLUMN leave_from timestamptz, ADD COLUMN leave_to timestamptz;
    CREATE TABLE staff_events (
        id          bigserial PRIMARY KEY,
        staff_id    text NOT NULL REFERENCES staff(id),
        actor       text NOT NULL,
        actor_role  text NOT NULL,
        action      text NOT NULL,
        changes     jsonb NOT NULL DEFAULT '{}',
        at          timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX staff_events_staff ON staff_events (staff_id, id);
    CREATE TRIGGER staff_events_no_update BEFORE UPDATE OR DELETE OR TRUNCATE ON staff_events
        FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
    REVOKE UPDATE, DELETE, TRUNCATE ON staff_events FROM redress_service;

    -- The workbench reads a case's clocks, return visits and notices under the staff role; like its
    -- history, each row is visible exactly when its case is.
    GRANT SELECT ON sla_clocks, surveys TO redress_staff;
    GRANT SELECT, INSERT ON staff_events TO redress_staff;
    GRANT USAGE, SELECT ON SEQUENCE staff_events_id_seq TO redress_staff;
    GRANT INSERT ON staff TO redress_staff;
    GRANT UPDATE (name, org_unit, role, skills, capacity, active, available, leave_from, leave_to) ON staff TO redress_staff;
    ALTER TABLE sla_clocks ENABLE ROW LEVEL SECURITY;
    CREATE POLICY sla_clocks_services ON sla_clocks TO redress_service USING (true) WITH CHECK (true);
    CREATE POLICY sla_clocks_staff ON sla_clocks TO redress_staff USING (EXISTS (SELECT 1 FROM complaints c WHERE c.id = complaint_id));
    ALTER TABLE surveys ENABLE ROW LEVEL SECURITY;
    CREATE POLICY surveys_services ON surveys TO redress_service USING (true) WITH CHECK (true);
    CREATE POLICY surveys_staff ON surveys TO redress_staff USING (EXISTS (SELECT 1 FROM complaints c WHERE c.id = complaint_id));
    """#

    static let consoleAndCustomerPages = #"""
    -- Console sign-in: a staff member's credentials, apart from the staff row the staff API reads,
    -- so no staff query can ever return a password hash. Only redress_service (the console) reads it.
    CREATE TABLE staff_credentials (
        staff_id        text PRIMARY KEY REFERENCES staff(id),
        password_hash   text NOT NULL,
        totp_secret     text,
        failed_attempts integer NOT NULL DEFAULT 0 CHECK (failed_attempts >= 0),
        locked_until    timestamptz,
        changed_at      timestamptz NOT NULL DEFAULT now()
    );
    -- Console sessions: the cookie holds a random value and only its SHA-256 is kept, so a copy of
    -- this table signs no one in. Ending a session sets ended_at; signing out ends them all.
    CREATE TABLE console_sessions (
        id_hash      bytea PRIMARY KEY,
        staff_id     text NOT NULL REFERENCES staff(id),
        csrf_token   text NOT NULL,
        created_at   timestamptz NOT NULL DEFAULT now(),
        last_seen_at timestamptz NOT NULL DEFAULT now(),
        ended_at     timestamptz
    );
    CREATE INDEX console_sessions_staff ON console_sessions (staff_id) WHERE ended_at IS NULL;
    -- 投诉进度查询: one-time codes sent to the phone on file (only their hash is kept), and every
    -- lookup by number, known or not, so guessing is limited per number across instances.
    CREATE TABLE status_codes (
        id           uuid PRIMARY KEY,
        complaint_id uuid NOT NULL REFERENCES complaints(id),
        code_hash    bytea NOT NULL,
        created_at   timestamptz NOT NULL DEFAULT now(),
        expires_at   timestamptz NOT NULL,
        attempts     integer NOT NULL DEFAULT 0,
        used_at      timestamptz
    );
    CREATE INDEX status_codes_complaint ON status_codes (complaint_id, created_at);
    CREATE TABLE status_lookups (
        number_hash  bytea NOT NULL,
        kind         text NOT NULL CHECK (kind IN ('code', 'check')),
        at           timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX status_lookups_number ON status_lookups (number_hash, at);
    """#

    static let deadLetters = #"""
    -- Dead letters too large for the broker (message.max.bytes): kept whole here, and the
    -- dead-letter topic carries a reference (header redress-dlq-stored) that replay follows.
    CREATE TABLE dead_letters (
        id          uuid PRIMARY KEY,
        topic       text NOT NULL,
        partition   integer NOT NULL,
        "offset"    bigint NOT NULL,
        consumer    text NOT NULL,
        key         text,
        value       bytea NOT NULL,
        headers     jsonb NOT NULL DEFAULT '{}',
        reason      text NOT NULL,
        at          timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX dead_letters_topic ON dead_letters (topic, at);
    -- Kept as they arrived: the services add rows, an operator replays or deletes them.
    REVOKE UPDATE ON dead_letters FROM redress_service;
    COMMENT ON TABLE dead_letters IS 'dead letters too large for the broker; the DLQ topic holds a reference (redress-dlq-stored)';
    """#

    static let notificationsByUnit = #"""
    -- Staff see a notification exactly when they see its case, like its history and clocks.
    ALTER TABLE notifications ENABLE ROW LEVEL SECURITY;
    CREATE POLICY notifications_services ON notifications TO redress_service USING (true) WITH CHECK (true);
    CREATE POLICY notifications_staff ON notifications TO redress_staff USING (EXISTS (SELECT 1 FROM complaints c WHERE c.id = complaint_id));
    -- The staff API appends events to the outbox; it never reads other units' (or its own) pending events.
    REVOKE SELECT ON outbox FROM redress_staff;
    """#

    static let typicalCases = #"""
    -- 典型案例: closed cases a supervisor marks for training, with a summary (personal data scrubbed).
    -- Visible, and markable, exactly where the case is.
    CREATE TABLE typical_cases (
        complaint_id uuid PRIMARY KEY REFERENCES complaints(id),
        summary      text NOT NULL CHECK (length(summary) BETWEEN 1 AND 2000),
        marked_by    text NOT NULL,
        marked_at    timestamptz NOT NULL DEFAULT now()
    );
    ALTER TABLE typical_cases ENABLE ROW LEVEL SECURITY;
    CREATE POLICY typical_cases_services ON typical_cases TO redress_service USING (true) WITH CHECK (true);
    CREATE POLICY typical_cases_staff ON typical_cases TO redress_staff
        USING (EXISTS (SELECT 1 FROM complaints c WHERE c.id = complaint_id))
        WITH CHECK (EXISTS (SELECT 1 FROM complaints c WHERE c.id = complaint_id));
    GRANT SELECT, INSERT, UPDATE ON typical_cases TO redress_staff;
    """#

    static let surveyLinksAtRest = #"""
    -- The return-visit link is a live credential: it no longer travels in survey.requested events
    -- (anyone who can read the topic could answer for the customer). Surveys keeps it here while the
    -- visit is open; notify reads it at send time; it is cleared once the visit is answered or expires.
    ALTER TABLE surveys ADD COLUMN link text;
    COMMENT ON COLUMN surveys.link IS 'The open return-visit link, read by notify at send time; NULL once answered or expired';
    -- Staff read a visit's outcome, never its link or token: column grants instead of the table grant.
    REVOKE SELECT ON surveys FROM redress_staff;
    GRANT SELECT (id, complaint_id, visit, due_at, status, invited_at, expires_at, answered_at, score, resolved, comment,
                  handling_unit, category, handler) ON surveys TO redress_staff;

    -- Each service's relay publishes only the events its service wrote, so the broker's ACLs can let
    -- each service's principal write only its own topics (deploy/kafka/acls.json). The writer is the
    -- inserting connection's application_name, which every service sets to its name; rows from
    -- anything else (and rows pending from before) are 'any', and go out through whichever relay takes them.
    ALTER TABLE outbox ADD COLUMN writer text NOT NULL
        DEFAULT CASE WHEN current_setting('application_name', true) LIKE 'redress-%' THEN current_setting('application_name', true) ELSE 'any' END;
    CREATE INDEX outbox_pending_by_writer ON outbox (writer, lane, id);
    DROP INDEX outbox_pending;

    -- The same for the status look-up's one-time code: kept here until used (its hash is what is
    -- checked), read by notify to text it, never on the broker.
    ALTER TABLE status_codes ADD COLUMN code text;
    """#

    static let periodicReports = #"""
    -- 定期分析报告: the rollup reports are summed from (ReportRollup). One row per local day
    -- (Asia/Shanghai), handling unit, branch, channel, category and measure.
    CREATE TABLE report_daily (
        day        date NOT NULL,
        unit_path  text NOT NULL,
        branch     text NOT NULL,
        channel    text NOT NULL,
        category   text NOT NULL,
        measure    text NOT NULL,
        value      bigint NOT NULL,
        PRIMARY KEY (day, unit_path, branch, channel, category, measure)
    );
    CREATE INDEX report_daily_unit ON report_daily (unit_path text_pattern_ops, day);
    -- A unit reads the reports of its subtree only, as it reads cases.
    ALTER TABLE report_daily ENABLE ROW LEVEL SECURITY;
    CREATE POLICY report_daily_services ON report_daily TO redress_service USING (true) WITH CHECK (true);
    CREATE POLICY report_daily_staff ON report_daily TO redress_staff
        USING (unit_path = current_setting('redress.unit_path', true) OR unit_path LIKE current_setting('redress.unit_path', true) || '/%');
    GRANT SELECT ON report_daily TO redress_staff;
    GRANT SELECT, INSERT, UPDATE, DELETE ON report_daily TO redress_service;

    -- A period's report as it was when generated (a month's or quarter's, for HQ and each province),
    -- kept as sent on. Immutable: generating it again adds the next version; both stay.
    CREATE TABLE report_snapshots (
        id            uuid PRIMARY KEY,
        unit          text NOT NULL REFERENCES org_units(code),
        unit_path     text NOT NULL,
        period        text NOT NULL,
        version       integer NOT NULL CHECK (version > 0),
        generated_at  timestamptz NOT NULL DEFAULT now(),
        generated_by  text NOT NULL,
        body          jsonb NOT NULL,
        UNIQUE (unit, period, version)
    );
    CREATE FUNCTION report_snapshots_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'report snapshots are immutable: generate the period again for a new version';
    END $$;
    CREATE TRIGGER report_snapshots_immutable BEFORE UPDATE OR DELETE ON report_snapshots
        FOR EACH ROW EXECUTE FUNCTION report_snapshots_immutable();
    ALTER TABLE report_snapshots ENABLE ROW LEVEL SECURITY;
    CREATE POLICY report_snapshots_services ON report_snapshots TO redress_service USING (true) WITH CHECK (true);
    CREATE POLICY report_snapshots_staff ON report_snapshots TO redress_staff
        USING (unit_path = current_setting('redress.unit_path', true) OR unit_path LIKE current_setting('redress.unit_path', true) || '/%');
    GRANT SELECT ON report_snapshots TO redress_staff;
    GRANT SELECT, INSERT ON report_snapshots TO redress_service;

    -- Inbox notes that are about no complaint (a snapshot announced to a unit's supervisors): they
    -- name what they are about in `reference`, and staff see those addressed to their subtree's units.
    ALTER TABLE notifications ALTER COLUMN complaint_id DROP NOT NULL;
    ALTER TABLE notifications ADD COLUMN reference text;
    CREATE POLICY notifications_staff_announcements ON notifications TO redress_staff USING (
        complaint_id IS NULL AND EXISTS (SELECT 1 FROM org_units u WHERE recipient = 'supervisors:' || u.code
            AND (u.path = current_setting('redress.unit_path', true) OR u.path LIKE current_setting('redress.unit_path', true) || '/%')));
    """#
    static let oversightDuties = #"""
    -- 协调员 (a business department's coordinator, answering inquiries) and 销售联络人 (sales' read-only
    -- view of the vexatious-complainant register) join the staff roles.
    ALTER TABLE staff DROP CONSTRAINT staff_role_check;
    ALTER TABLE staff ADD CONSTRAINT staff_role_check
        CHECK (role IN ('agent', 'supervisor', 'committee', 'auditor', 'admin', 'coordinator', 'sales_liaison'));
    -- Each unit's business departments (claims, underwriting, sales, legal, finance): seed data.
    CREATE TABLE departments (
        unit  text NOT NULL REFERENCES org_units(code),
        code  text NOT NULL CHECK (code ~ '^[a-z][a-z_]{1,31}$'),
        name  text NOT NULL,
        PRIMARY KEY (unit, code)
    );
    GRANT SELECT ON departments TO redress_staff;
    ALTER TABLE staff ADD COLUMN department text;
    ALTER TABLE staff ADD CONSTRAINT staff_department FOREIGN KEY (org_unit, department) REFERENCES departments (unit, code);
    -- A coordinator belongs to a department; nobody else does.
    ALTER TABLE staff ADD CONSTRAINT staff_coordinator_department CHECK ((role = 'coordinator') = (department IS NOT NULL)) NOT VALID;
    GRANT UPDATE (department) ON staff TO redress_staff;

    -- 转相关部门调查: the case owner asks a department of the handling unit (or a unit above it) to
    -- investigate; its coordinator answers. Due by the policy's `inquiry` clock (working time).
    CREATE TABLE inquiries (
        id           uuid PRIMARY KEY,
        complaint_id uuid NOT NULL REFERENCES complaints(id),
        unit         text NOT NULL,
        department   text NOT NULL,
        question     text NOT NULL,
        attachments  jsonb NOT NULL DEFAULT '[]',
        automatic    boolean NOT NULL DEFAULT false,
        asked_by     text NOT NULL,
        asked_at     timestamptz NOT NULL DEFAULT now(),
        warn_at      timestamptz NOT NULL,
        due_at       timestamptz NOT NULL,
        status       text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'answered')),
        findings     text,
        evidence     jsonb NOT NULL DEFAULT '[]',
        answered_by  text,
        answered_at  timestamptz,
        warned_at    timestamptz,
        breached_at  timestamptz,
        version      integer NOT NULL DEFAULT 1,
        FOREIGN KEY (unit, department) REFERENCES departments (unit, code),
        CHECK ((status = 'answered') = (answered_at IS NOT NULL))
    );
    CREATE INDEX inquiries_complaint ON inquiries (complaint_id, asked_at);
    CREATE INDEX inquiries_addressed ON inquiries (unit, department, due_at) WHERE status = 'open';
    CREATE INDEX inquiries_warn_due ON inquiries (warn_at) WHERE status = 'open' AND warned_at IS NULL;
    CREATE INDEX inquiries_breach_due ON inquiries (due_at) WHERE status = 'open' AND breached_at IS NULL;

    -- 协调委员会: each referral, its ruling clock and its ruling (members present, decision, and the
    -- final liability, responsible link and cause the closure must use). A case may be referred again.
    CREATE TABLE committee_referrals (
        id               uuid PRIMARY KEY,
        complaint_id     uuid NOT NULL REFERENCES complaints(id),
        referred_by      text NOT NULL,
        referred_at      timestamptz NOT NULL DEFAULT now(),
        reason           text NOT NULL,
        warn_at          timestamptz NOT NULL,
        due_at           timestamptz NOT NULL,
        ruled_at         timestamptz,
        ruled_by         text,
        members          text[] NOT NULL DEFAULT '{}',
        decision         text,
        liability        text,
        responsible_link text,
        cause_code       text,
        warned_at        timestamptz,
        breached_at      timestamptz
    );
    CREATE INDEX committee_referrals_complaint ON committee_referrals (complaint_id, referred_at);
    CREATE UNIQUE INDEX committee_referrals_one_pending ON committee_referrals (complaint_id) WHERE ruled_at IS NULL;
    CREATE INDEX committee_referrals_warn_due ON committee_referrals (warn_at) WHERE ruled_at IS NULL AND warned_at IS NULL;
    CREATE INDEX committee_referrals_breach_due ON committee_referrals (due_at) WHERE ruled_at IS NULL AND breached_at IS NULL;

    -- 抽查: draws (one per kind, unit and period: drawing again gives the same sample) and their cases.
    CREATE TABLE spot_check_draws (
        kind        text NOT NULL CHECK (kind IN ('not_liable', 'satisfaction')),
        unit        text NOT NULL REFERENCES org_units(code),
        unit_path   text NOT NULL,
        period      text NOT NULL,
        seed        text NOT NULL,
        share       double precision NOT NULL,
        minimum     integer NOT NULL,
        population  integer NOT NULL,
        drawn       integer NOT NULL,
        drawn_by    text NOT NULL,
        drawn_at    timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (kind, unit, period)
    );
    CREATE TABLE spot_checks (
        id                  uuid PRIMARY KEY,
        kind                text NOT NULL,
        unit                text NOT NULL,
        unit_path           text NOT NULL,
        period              text NOT NULL,
        complaint_id        uuid NOT NULL REFERENCES complaints(id),
        handling_unit       text NOT NULL,
        status              text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'upheld', 'revised', 'reinvestigate')),
        note                text,
        liability           text,
        responsible_link    text,
        cause_code          text,
        review_complaint_id uuid REFERENCES complaints(id),
        decided_by          text,
        decided_at          timestamptz,
        version             integer NOT NULL DEFAULT 1,
        FOREIGN KEY (kind, unit, period) REFERENCES spot_check_draws (kind, unit, period),
        UNIQUE (kind, unit, period, complaint_id)
    );
    CREATE INDEX spot_checks_unit ON spot_checks (unit_path text_pattern_ops, status);
    CREATE INDEX spot_checks_complaint ON spot_checks (complaint_id);

    -- 整改: corrective actions from a case, a spot-check or a review, owned by a unit, with reminders.
    CREATE TABLE corrective_actions (
        id            uuid PRIMARY KEY,
        source        text NOT NULL CHECK (source IN ('case', 'spot_check', 'review')),
        complaint_id  uuid REFERENCES complaints(id),
        spot_check_id uuid REFERENCES spot_checks(id),
        owner_unit    text NOT NULL REFERENCES org_units(code),
        unit_path     text NOT NULL,
        responsible   text NOT NULL REFERENCES staff(id),
        action        text NOT NULL,
        due_at        timestamptz NOT NULL,
        status        text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'done', 'verified')),
        created_by    text NOT NULL,
        created_at    timestamptz NOT NULL DEFAULT now(),
        done_note     text,
        done_by       text,
        done_at       timestamptz,
        verified_by   text,
        verified_at   timestamptz,
        reminded_at   timestamptz,
        alerted_at    timestamptz,
        version       integer NOT NULL DEFAULT 1,
        CHECK ((source = 'spot_check') = (spot_check_id IS NOT NULL)),
        CHECK (source = 'spot_check' OR complaint_id IS NOT NULL)
    );
    CREATE INDEX corrective_actions_unit ON corrective_actions (unit_path text_pattern_ops, status, due_at);
    CREATE INDEX corrective_actions_due ON corrective_actions (due_at) WHERE status = 'open';

    -- 无理缠访备案: entries by the customer's keyed hash; one live (proposed or approved) entry per
    -- customer. Every read and change is audited, like a personal-data read.
    CREATE TABLE vexatious_register (
        id            uuid PRIMARY KEY,
        customer_key  text NOT NULL,
        unit          text NOT NULL REFERENCES org_units(code),
        unit_path     text NOT NULL,
        reasons       text NOT NULL,
        case_numbers  text[] NOT NULL CHECK (cardinality(case_numbers) > 0),
        status        text NOT NULL DEFAULT 'proposed' CHECK (status IN ('proposed', 'approved', 'rejected', 'expired')),
        proposed_by   text NOT NULL,
        proposed_at   timestamptz NOT NULL DEFAULT now(),
        decided_by    text,
        decided_at    timestamptz,
        decision_note text,
        review_at     timestamptz,
        version       integer NOT NULL DEFAULT 1,
        CHECK ((status = 'approved') <= (review_at IS NOT NULL))
    );
    CREATE UNIQUE INDEX vexatious_register_live ON vexatious_register (customer_key) WHERE status IN ('proposed', 'approved');
    CREATE INDEX vexatious_register_unit ON vexatious_register (unit_path text_pattern_ops, status);
    CREATE INDEX vexatious_register_review ON vexatious_register (review_at) WHERE status = 'approved';
    CREATE TABLE register_reads (
        id          bigserial PRIMARY KEY,
        entry_id    uuid NOT NULL REFERENCES vexatious_register(id),
        actor       text NOT NULL,
        actor_role  text NOT NULL,
        actor_unit  text,
        action      text NOT NULL,
        at          timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX register_reads_entry ON register_reads (entry_id, at);
    CREATE TRIGGER register_reads_no_update BEFORE UPDATE OR DELETE OR TRUNCATE ON register_reads
        FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
    REVOKE UPDATE, DELETE, TRUNCATE ON register_reads FROM redress_service;

    -- Row-level security: inquiries and referrals are visible exactly when their case is; draws,
    -- spot-checks, corrective actions and register entries where their unit is in the caller's subtree.
    ALTER TABLE inquiries ENABLE ROW LEVEL SECURITY;
    CREATE POLICY inquiries_services ON inquiries TO redress_service USING (true) WITH CHECK (true);
    CREATE POLICY inquiries_staff ON inquiries TO redress_staff
        USING (EXISTS (SELECT 1 FROM complaints c WHERE c.id = complaint_id))
        WITH CHECK (EXISTS (SELECT 1 FROM complaints c WHERE c.id = complaint_id));
    ALTER TABLE committee_referrals ENABLE ROW LEVEL SECURITY;
    CREATE POLICY committee_referrals_services ON committee_referrals TO redress_service USING (true) WITH CHECK (true);
    CREATE POLICY committee_referrals_staff ON committee_referrals TO redress_staff
        USING (EXISTS (SELECT 1 FROM complaints c WHERE c.id = complaint_id))
        WITH CHECK (EXISTS (SELECT 1 FROM complaints c WHERE c.id = complaint_id));
    ALTER TABLE spot_check_draws ENABLE ROW LEVEL SECURITY;
    CREATE POLICY spot_check_draws_services ON spot_check_draws TO redress_service USING (true) WITH CHECK (true);
    CREATE POLICY spot_check_draws_staff ON spot_check_draws TO redress_staff
        USING (unit_path = current_setting('redress.unit_path', true) OR unit_path LIKE current_setting('redress.unit_path', true) || '/%')
        WITH CHECK (unit_path = current_setting('redress.unit_path', true) OR unit_path LIKE current_setting('redress.unit_path', true) || '/%');
    ALTER TABLE spot_checks ENABLE ROW LEVEL SECURITY;
    CREATE POLICY spot_checks_services ON spot_checks TO redress_service USING (true) WITH CHECK (true);
    CREATE POLICY spot_checks_staff ON spot_checks TO redress_staff
        USING (unit_path = current_setting('redress.unit_path', true) OR unit_path LIKE current_setting('redress.unit_path', true) || '/%')
        WITH CHECK (unit_path = current_setting('redress.unit_path', true) OR unit_path LIKE current_setting('redress.unit_path', true) || '/%');
    ALTER TABLE corrective_actions ENABLE ROW LEVEL SECURITY;
    CREATE POLICY corrective_actions_services ON corrective_actions TO redress_service USING (true) WITH CHECK (true);
    CREATE POLICY corrective_actions_staff ON corrective_actions TO redress_staff
        USING (unit_path = current_setting('redress.unit_path', true) OR unit_path LIKE current_setting('redress.unit_path', true) || '/%')
        WITH CHECK (unit_path = current_setting('redress.unit_path', true) OR unit_path LIKE current_setting('redress.unit_path', true) || '/%');
    ALTER TABLE vexatious_register ENABLE ROW LEVEL SECURITY;
    CREATE POLICY vexatious_register_services ON vexatious_register TO redress_service USING (true) WITH CHECK (true);
    CREATE POLICY vexatious_register_staff ON vexatious_register TO redress_staff
        USING (unit_path = current_setting('redress.unit_path', true) OR unit_path LIKE current_setting('redress.unit_path', true) || '/%')
        WITH CHECK (unit_path = current_setting('redress.unit_path', true) OR unit_path LIKE current_setting('redress.unit_path', true) || '/%');
    ALTER TABLE register_reads ENABLE ROW LEVEL SECURITY;
    CREATE POLICY register_reads_services ON register_reads TO redress_service USING (true) WITH CHECK (true);
    CREATE POLICY register_reads_staff ON register_reads TO redress_staff
        USING (EXISTS (SELECT 1 FROM vexatious_register r WHERE r.id = entry_id))
        WITH CHECK (EXISTS (SELECT 1 FROM vexatious_register r WHERE r.id = entry_id));
    GRANT SELECT, INSERT, UPDATE ON inquiries, committee_referrals, spot_check_draws, spot_checks, corrective_actions, vexatious_register TO redress_staff;
    GRANT SELECT, INSERT ON register_reads TO redress_staff;
    GRANT USAGE, SELECT ON SEQUENCE register_reads_id_seq TO redress_staff;
    GRANT INSERT ON notifications TO redress_staff;

    -- Inbox notes about no complaint addressed to one staff member (a corrective action's reminder, a
    -- register decision, a staff change): visible to that person (`redress.subject`, set per request).
    CREATE POLICY notifications_staff_personal ON notifications FOR SELECT TO redress_staff USING (
        complaint_id IS NULL AND recipient = 'staff:' || current_setting('redress.subject', true));
    CREATE POLICY notifications_staff_insert ON notifications FOR INSERT TO redress_staff WITH CHECK (channel = 'staff_inbox');
    """#

    /// The NOTIFY that wakes the relays names the writer whose rows were inserted, so only that
    /// service's relay (and, for 'any', every relay) runs a cycle. With one payload for all, every
    /// commit of any service woke all six relays, and five found nothing: most relay cycles at low
    /// load were empty claims.
    static let relayWakeUpByWriter = #"""
    CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        -- The same rule as outbox.writer's default.
        PERFORM pg_notify('redress_outbox', CASE WHEN current_setting('application_name', true) LIKE 'redress-%'
                                                 THEN current_setting('application_name', true) ELSE 'any' END);
        RETURN NULL;
    END $$;
    """#
}
