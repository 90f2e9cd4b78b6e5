-- Team mode: the display name a platform sends with a linked chat identity's requests (Discord nickname or
-- global name, Telegram username or first and last name), kept apart from the name an admin set
-- (chat_identities.display_name), which it never overrides.
ALTER TABLE chat_identities ADD COLUMN platform_name text CHECK (length(platform_name) <= 200);
