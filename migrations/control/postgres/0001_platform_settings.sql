-- Instance-wide settings (key/value), written by the platform itself; later migrations add the control plane.
CREATE TABLE platform_settings (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL,
  updated_at TIMESTAMPTZ NOT NULL
);
