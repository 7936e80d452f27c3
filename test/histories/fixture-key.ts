// The payload key the committed histories were recorded with. It protects nothing but
// made-up env values; it is committed so that replay can decode the workflow inputs,
// exactly as a production worker decodes them with the real keys.
export const FIXTURE_PAYLOAD_KEYS = 'fixture-2026:mJ17v9JFiJ2vMyQiNs3UHdPZ68igw20GAdgS+pRotQ8=';

/** Every env value a recording sends starts with this, so the fixtures can be searched for it. */
export const FIXTURE_SECRET_PREFIX = 'fixture-secret-';
