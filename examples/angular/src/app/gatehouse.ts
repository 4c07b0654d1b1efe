/**
 * Gatehouse for an Angular app served behind it, in one file to copy.
 *
 * Gatehouse keeps the browser's session in an HttpOnly cookie the app never
 * sees. When the session is gone (expired, signed out elsewhere, revoked),
 * Gatehouse answers the app's API calls with 401, a small JSON body and
 * `WWW-Authenticate: Bearer realm="gatehouse"`, never with an HTML login
 * page. `gatehouseAuthInterceptor` turns that answer into a navigation to
 * Gatehouse's sign-in, which comes back to the page the user was on;
 * `GatehouseUserService` reads `/oauth2/userinfo` for who is signed in.
 *
 *     export const appConfig: ApplicationConfig = {
 *       providers: [provideHttpClient(withInterceptors([gatehouseAuthInterceptor]))],
 *     };
 */
import { DOCUMENT, Injectable, InjectionToken, inject } from '@angular/core';
import {
  HttpClient,
  HttpContext,
  HttpContextToken,
  HttpErrorResponse,
  HttpInterceptorFn,
} from '@angular/common/http';
import { Observable, catchError, map, of, throwError } from 'rxjs';

/** Where Gatehouse's own paths live: its prefix, "/oauth2" unless configured otherwise. */
export const GATEHOUSE_PREFIX = new InjectionToken<string>('GATEHOUSE_PREFIX', {
  providedIn: 'root',
  factory: () => '/oauth2',
});

/** What this file needs of `window.location`: where the page is, and how to leave it. */
export interface PageLocation {
  readonly origin: string;
  readonly pathname: string;
  readonly search: string;
  readonly hash: string;
  assign(url: string): void;
}

/** The page's location; tests provide their own. */
export const GATEHOUSE_LOCATION = new InjectionToken<PageLocation>('GATEHOUSE_LOCATION', {
  providedIn: 'root',
  factory: () => inject(DOCUMENT).location,
});

/**
 * Set to true on a request whose 401 its caller handles itself, so the
 * interceptor does not leave the page (GatehouseUserService does this to ask
 * "is anyone signed in?").
 */
export const GATEHOUSE_SKIP_SIGN_IN = new HttpContextToken<boolean>(() => false);

/**
 * Reports whether an error answer is Gatehouse asking for a sign-in: 401 with
 * its `Bearer realm="gatehouse"` challenge (and, when the body was JSON, its
 * `"error": "unauthorized"`). The application's own 401s (Django's carry
 * `realm="api"`) and a refused bearer token (`error="invalid_token"`, a
 * native client's problem, not the browser's) are left to the caller.
 */
export function signInRequired(status: number, wwwAuthenticate: string | null, body: unknown): boolean {
  if (status !== 401 || wwwAuthenticate === null) {
    return false;
  }
  if (!/^\s*bearer\b/i.test(wwwAuthenticate) || !/\brealm\s*=\s*"gatehouse"/i.test(wwwAuthenticate)) {
    return false;
  }
  if (/\berror\s*=/i.test(wwwAuthenticate)) {
    return false;
  }
  if (body !== null && typeof body === 'object' && 'error' in body) {
    return (body as { error: unknown }).error === 'unauthorized';
  }
  return true;
}

/**
 * The URL of Gatehouse's sign-in that returns to the page's current path,
 * query and fragment (`rd`, which Gatehouse checks again). Leading slashes and
 * backslashes are folded into one `/`, so the way back is always a path on
 * this site, never `//other.example`.
 */
export function signInUrl(prefix: string, page: Pick<PageLocation, 'pathname' | 'search' | 'hash'>): string {
  const path = '/' + page.pathname.replace(/^[/\\]+/, '');
  return `${prefix}/start?rd=${encodeURIComponent(path + page.search + page.hash)}`;
}

/** Reports whether url (absolute, or relative to the page) is on the page's own origin. */
export function sameOrigin(url: string, origin: string): boolean {
  try {
    return new URL(url, origin + '/').origin === origin;
  } catch {
    return false;
  }
}

/** Leaves the page for Gatehouse's sign-in or sign-out, once. */
@Injectable({ providedIn: 'root' })
export class GatehouseNavigation {
  private readonly prefix = inject(GATEHOUSE_PREFIX);
  private readonly page = inject(GATEHOUSE_LOCATION);
  private leaving = false;

  /**
   * Goes to Gatehouse's sign-in and back to this page. Only the first call
   * navigates: a page whose five parallel calls all get 401 leaves once.
   */
  signIn(): void {
    this.leave(signInUrl(this.prefix, this.page));
  }

  /** Ends the Gatehouse session (on every host it spans) and lands on rd, a path on this site. */
  signOut(rd = '/'): void {
    this.leave(`${this.prefix}/sign_out?rd=${encodeURIComponent(rd)}`);
  }

  private leave(url: string): void {
    if (this.leaving) {
      return;
    }
    this.leaving = true;
    this.page.assign(url);
  }
}

/**
 * Sends the browser to Gatehouse's sign-in when one of the app's own
 * requests gets Gatehouse's 401, then passes the error on so the caller can
 * stop what it was doing. Requests to other origins and requests marked
 * with GATEHOUSE_SKIP_SIGN_IN are never redirected.
 */
export const gatehouseAuthInterceptor: HttpInterceptorFn = (req, next) => {
  const page = inject(GATEHOUSE_LOCATION);
  const navigation = inject(GatehouseNavigation);
  return next(req).pipe(
    catchError((err: unknown) => {
      if (
        err instanceof HttpErrorResponse &&
        !req.context.get(GATEHOUSE_SKIP_SIGN_IN) &&
        sameOrigin(req.url, page.origin) &&
        signInRequired(err.status, err.headers.get('WWW-Authenticate'), err.error)
      ) {
        navigation.signIn();
      }
      return throwError(() => err);
    }),
  );
};

/** The signed-in user as Gatehouse's `/oauth2/userinfo` describes them. */
export interface GatehouseUser {
  /** The provider's subject: stable, the key to store data under. */
  readonly user: string;
  readonly email: string;
  readonly emailVerified: boolean;
  readonly name: string;
  readonly preferredUsername: string;
  readonly groups: readonly string[];
}

/** Reads `/oauth2/userinfo`. */
@Injectable({ providedIn: 'root' })
export class GatehouseUserService {
  private readonly http = inject(HttpClient);
  private readonly prefix = inject(GATEHOUSE_PREFIX);

  /**
   * The signed-in user, or null when nobody is (Gatehouse's 401: the page
   * stays, so it can offer a sign-in button). Any other failure, or an answer
   * that is not a userinfo object, is an error.
   */
  current(): Observable<GatehouseUser | null> {
    return this.http
      .get<unknown>(`${this.prefix}/userinfo`, {
        context: new HttpContext().set(GATEHOUSE_SKIP_SIGN_IN, true),
      })
      .pipe(
        map(parseUserinfo),
        catchError((err: unknown) =>
          err instanceof HttpErrorResponse && err.status === 401 ? of(null) : throwError(() => err),
        ),
      );
  }
}

/** Checks and converts a `/oauth2/userinfo` body; throws on anything else. */
export function parseUserinfo(body: unknown): GatehouseUser {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new Error('gatehouse: userinfo is not a JSON object');
  }
  const b = body as Record<string, unknown>;
  const text = (key: string): string => {
    const v = b[key];
    if (v === undefined || v === null) {
      return '';
    }
    if (typeof v !== 'string') {
      throw new Error(`gatehouse: userinfo ${key} is not a string`);
    }
    return v;
  };
  const user = text('user');
  if (user === '') {
    throw new Error('gatehouse: userinfo has no user');
  }
  const groups = b['groups'] ?? [];
  if (!Array.isArray(groups) || !groups.every((g): g is string => typeof g === 'string')) {
    throw new Error('gatehouse: userinfo groups is not a list of strings');
  }
  return {
    user,
    email: text('email'),
    emailVerified: b['email_verified'] === true,
    name: text('name'),
    preferredUsername: text('preferred_username'),
    groups: [...groups],
  };
}
