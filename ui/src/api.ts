/** The public API, called with the session's token; a refused token is renewed once (OIDC), else signs the page out. */
import { renewToken } from './oidc.js';
import { getToken, signOut } from './session.js';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const response = await request(method, path, body);
  if (response.status === 204 || response.status === 202) {
    const text = await response.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }
  return (await response.json()) as T;
}

/**
 * A job's output file, fetched with the token (a plain link cannot carry it). On
 * AWS the file is in S3: asked with `link=true`, the API answers its presigned
 * URL, which the browser then opens as a download (a fetch could not follow the
 * API's redirect to S3: another origin). Locally the answer is the bytes.
 */
export async function download(path: string, fileName: string): Promise<void> {
  const response = await request('GET', `${path}?link=true`);
  const link = document.createElement('a');
  if ((response.headers.get('content-type') ?? '').startsWith('application/json')) {
    link.href = ((await response.json()) as { url: string }).url;
    link.rel = 'noopener';
    link.click();
    return;
  }
  const url = URL.createObjectURL(await response.blob());
  link.href = url;
  link.download = fileName;
  link.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

async function request(method: string, path: string, body?: unknown, renewed = false): Promise<Response> {
  const token = getToken() ?? '';
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.ok) return response;
  if (response.status === 401) {
    if (!renewed && (await renewToken(token))) return request(method, path, body, true);
    signOut();
  }
  throw new ApiError(response.status, await errorMessage(response));
}

/** The API's `{ error: { message, details } }`, as one sentence. */
async function errorMessage(response: Response): Promise<string> {
  try {
    const { error } = (await response.json()) as {
      error?: { message?: string; details?: { field?: string; reason?: string }[] };
    };
    const details = (error?.details ?? []).map((d) => `${d.field}: ${d.reason}`).join('; ');
    return [error?.message ?? `${response.status} ${response.statusText}`, details].filter(Boolean).join(': ');
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}
