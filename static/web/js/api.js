// The REST client of the browser pages: same-origin fetch with the CSRF token, and every
// failure turned into one sentence a person can read (never a stack trace).

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  if (match) return decodeURIComponent(match[1]);
  const input = document.querySelector("input[name=csrfmiddlewaretoken]");
  return input ? input.value : "";
}

export class ApiError extends Error {
  constructor(sentence, status, errors = {}) {
    super(sentence);
    this.status = status;
    this.errors = errors;
  }
}

export async function request(method, url, body) {
  const init = {
    method,
    credentials: "same-origin",
    headers: { Accept: "application/json", "X-CSRFToken": csrfToken() },
  };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch {
    throw new ApiError("The server cannot be reached; check your connection and try again.", 0);
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) throw new ApiError(sentence(response.status, data), response.status, data?.errors || {});
  return data;
}

function sentence(status, data) {
  if (data && typeof data.detail === "string" && data.detail) return data.detail;
  if (status === 401 || status === 403) return "You are not allowed to do that; are you still logged in?";
  if (status === 404) return "That no longer exists.";
  if (status >= 500) return "Something went wrong on the server; it has been logged. Try again in a moment.";
  return `The request was refused (HTTP ${status}).`;
}

// The refusal as one sentence, with the fields it names when they say more than it.
export function refusal(error) {
  const fields = Object.entries(error.errors || {})
    .filter(([, messages]) => messages.join(" ") !== error.message)
    .map(([field, messages]) => `${field}: ${messages.join(" ")}`);
  return [error.message, ...fields].join(" ");
}

export const get = (url) => request("GET", url);
export const post = (url, body) => request("POST", url, body);
