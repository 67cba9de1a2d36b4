-- One meeting per ClientRequestToken: concurrent CreateMeeting retries resolve to one row.
DROP INDEX IF EXISTS meetings_crt;
CREATE UNIQUE INDEX meetings_crt_unique ON meetings(client_request_token);
