/**
 * The one error type the JS API rejects with. The native modules reject promises with a code
 * (one per variant of the core's `ChatError`, plus a few of the bridge's own) and the core's
 * message; this module turns whatever the bridge delivers into a typed {@link ChatSyncError}.
 */

/** Every code a promise of this package can reject with. */
export const ErrorCodes = {
  /** The server could not be reached. Retry later; sends are queued regardless. */
  OFFLINE: 'E_OFFLINE',
  /** The token was missing, invalid or expired and no fresh one could be had. */
  UNAUTHORIZED: 'E_UNAUTHORIZED',
  /** The room, user or message does not exist (or is not visible to this user). */
  NOT_FOUND: 'E_NOT_FOUND',
  /** The server refused the request for good (403, 413, 400...). */
  REJECTED: 'E_REJECTED',
  /** The server answered something that is not protocol v1; nothing was stored. */
  PROTOCOL: 'E_PROTOCOL',
  /** The on-device store failed; stored data is left as it was. */
  STORAGE: 'E_STORAGE',
  /** The caller passed something invalid (empty text, oversized message, bad URL). */
  INVALID_INPUT: 'E_INVALID_INPUT',
  /** The store is held by another process; try again later. */
  BUSY: 'E_BUSY',
  /** The client was shut down (logout). */
  SHUT_DOWN: 'E_SHUT_DOWN',
  /** `configure` was not called yet. */
  NOT_CONFIGURED: 'E_NOT_CONFIGURED',
  /** No user is logged in. */
  NOT_LOGGED_IN: 'E_NOT_LOGGED_IN',
  /** The native module is not linked into the app (pod install / Gradle sync missing). */
  NOT_LINKED: 'E_NOT_LINKED',
  /** Anything else (a bug): the message says what. */
  INTERNAL: 'E_INTERNAL',
} as const;

/** A code of {@link ErrorCodes}. */
export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

const KNOWN_CODES: ReadonlySet<string> = new Set(Object.values(ErrorCodes));

/** The error every promise of this package rejects with. */
export class ChatSyncError extends Error {
  /** What went wrong, as a stable code to branch on. */
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = 'ChatSyncError';
    this.code = code;
    // Keep `instanceof` working when compiled to ES5-style classes.
    Object.setPrototypeOf(this, ChatSyncError.prototype);
  }

  /** Whether retrying later may succeed (offline, busy). */
  get isTransient(): boolean {
    return this.code === ErrorCodes.OFFLINE || this.code === ErrorCodes.BUSY;
  }
}

/**
 * Turns a rejection from the bridge (an `Error` with a `code` on both platforms) or anything
 * else thrown into a {@link ChatSyncError}. Unknown codes become `E_INTERNAL`, keeping the text.
 */
export function toChatSyncError(error: unknown): ChatSyncError {
  if (error instanceof ChatSyncError) return error;
  if (typeof error === 'object' && error !== null) {
    const record = error as { code?: unknown; message?: unknown };
    const message = typeof record.message === 'string' ? record.message : String(error);
    const code = typeof record.code === 'string' && KNOWN_CODES.has(record.code) ? (record.code as ErrorCode) : ErrorCodes.INTERNAL;
    return new ChatSyncError(code, message);
  }
  return new ChatSyncError(ErrorCodes.INTERNAL, String(error));
}
