-- Daylog keys, constraints and indexes, applied after the bulk load (see schema.sql).
-- Foreign keys are DEFERRABLE INITIALLY DEFERRED as Django creates them, with the review's
-- ON DELETE CASCADE. The indexes are the ones the review lists as present (Django's implicit
-- FK indexes), not its recommendations.

ALTER TABLE auth_user ADD CONSTRAINT auth_user_pkey PRIMARY KEY (id);
ALTER TABLE auth_user ADD CONSTRAINT auth_user_username_key UNIQUE (username);
ALTER TABLE auth_user ADD CONSTRAINT auth_user_email_key UNIQUE (email);

ALTER TABLE journal_tag ADD CONSTRAINT journal_tag_pkey PRIMARY KEY (id);
ALTER TABLE journal_tag ADD CONSTRAINT unique_user_tag UNIQUE (user_id, name);
CREATE INDEX journal_tag_user_id ON journal_tag (user_id);

ALTER TABLE journal_journalentry ADD CONSTRAINT journal_journalentry_pkey PRIMARY KEY (id);
CREATE INDEX journal_journalentry_user_id ON journal_journalentry (user_id);

ALTER TABLE journal_journalentry_tags ADD CONSTRAINT journal_journalentry_tags_pkey PRIMARY KEY (id);
ALTER TABLE journal_journalentry_tags ADD CONSTRAINT journal_journalentry_tags_journalentry_id_tag_id_uniq
    UNIQUE (journalentry_id, tag_id);
CREATE INDEX journal_journalentry_tags_journalentry_id ON journal_journalentry_tags (journalentry_id);
CREATE INDEX journal_journalentry_tags_tag_id ON journal_journalentry_tags (tag_id);

ALTER TABLE journal_tag ADD CONSTRAINT journal_tag_user_id_fk_auth_user_id
    FOREIGN KEY (user_id) REFERENCES auth_user (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE journal_journalentry ADD CONSTRAINT journal_journalentry_user_id_fk_auth_user_id
    FOREIGN KEY (user_id) REFERENCES auth_user (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE journal_journalentry_tags ADD CONSTRAINT journal_journalentry_tags_journalentry_id_fk
    FOREIGN KEY (journalentry_id) REFERENCES journal_journalentry (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE journal_journalentry_tags ADD CONSTRAINT journal_journalentry_tags_tag_id_fk
    FOREIGN KEY (tag_id) REFERENCES journal_tag (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED;
