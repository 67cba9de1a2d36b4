-- Account-wide settings documents (the default calling name of UpdatePhoneNumberSettings).
CREATE TABLE account_settings (
    name TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
