// Who may use the codec server: the Temporal UI forwards the signed-in user's OIDC access
// token, verified here against the identity provider's JWKS (issuer, audience, expiry);
// the CLI and automation may use a static bearer token instead. Readers decode; only
// writers encode (encoding is how payloads get into workflows started from the UI).
import { createHash, timingSafeEqual } from 'node:crypto';
import { createRemoteJWKSet, jwtVerify, type JWTVerifyGetKey } from 'jose';

export type CodecRole = 'reader' | 'writer';

export interface OidcOptions {
  jwksUrl: string;
  issuer: string;
  audience: string | string[];
  /** Claim holding the user's roles or groups: an array, or a space-separated string (like `scope`). Default `roles`. */
  rolesClaim?: string;
  /** Role that may decode. Default `codec-reader`. */
  readerRole?: string;
  /** Role that may decode and encode. Default `codec-writer`. */
  writerRole?: string;
}

/** The caller's role, or undefined when the credentials are missing or invalid. */
export type Authenticator = (authorization: string | undefined) => Promise<CodecRole | 'no-role' | undefined>;

/**
 * Hashing both sides first makes the comparison constant-time in the length of
 * the presented token as well, which timingSafeEqual alone is not.
 */
function staticTokenMatcher(token: string): (presented: string) => boolean {
  const expected = createHash('sha256').update(token, 'utf8').digest();
  return (presented) => timingSafeEqual(createHash('sha256').update(presented, 'utf8').digest(), expected);
}

function claimValues(value: unknown): string[] {
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === 'string');
  if (typeof value === 'string') return value.split(/\s+/).filter(Boolean);
  return [];
}

export function createAuthenticator(opts: { token?: string; oidc?: OidcOptions; jwks?: JWTVerifyGetKey }): Authenticator {
  const matchesStatic = opts.token ? staticTokenMatcher(opts.token) : undefined;
  const oidc = opts.oidc;
  const jwks = oidc
    ? (opts.jwks ?? createRemoteJWKSet(new URL(oidc.jwksUrl), { timeoutDuration: 5000, cooldownDuration: 30_000 }))
    : undefined;
  return async (authorization) => {
    const presented = /^Bearer[ ]+(\S+)\s*$/i.exec(authorization ?? '')?.[1];
    if (!presented) return undefined;
    // Automation's token acts for a writer: it is as powerful as the payload keys' holder.
    if (matchesStatic?.(presented)) return 'writer';
    if (!oidc || !jwks) return undefined;
    try {
      const { payload } = await jwtVerify(presented, jwks, { issuer: oidc.issuer, audience: oidc.audience, clockTolerance: 30 });
      const roles = claimValues(payload[oidc.rolesClaim ?? 'roles']);
      if (roles.includes(oidc.writerRole ?? 'codec-writer')) return 'writer';
      if (roles.includes(oidc.readerRole ?? 'codec-reader')) return 'reader';
      return 'no-role';
    } catch {
      // Bad signature, wrong issuer or audience, expired, or the JWKS unreachable: all mean "not you".
      return undefined;
    }
  };
}
