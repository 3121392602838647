// Hands an OAuth2 provider's answer back to the Swagger UI window that opened this one.
// Swagger UI's dist/oauth2-redirect.html (Apache-2.0), as a file so that the page needs no inline script.
"use strict";

function run() {
  const oauth2 = window.opener.swaggerUIRedirectOauth2;
  const sentState = oauth2.state;
  const redirectUrl = oauth2.redirectUrl;
  let qp;

  if (/code|token|error/.test(window.location.hash)) {
    qp = window.location.hash.substring(1).replace("?", "&");
  } else {
    qp = location.search.substring(1);
  }

  const arr = qp.split("&");
  arr.forEach((v, i, _arr) => {
    _arr[i] = '"' + v.replace("=", '":"') + '"';
  });
  qp = qp ? JSON.parse("{" + arr.join() + "}", (key, value) => (key === "" ? value : decodeURIComponent(value))) : {};

  const isValid = qp.state === sentState;
  const flow = oauth2.auth.schema.get("flow");

  if (["accessCode", "authorizationCode", "authorization_code"].includes(flow) && !oauth2.auth.code) {
    if (!isValid) {
      oauth2.errCb({
        authId: oauth2.auth.name,
        source: "auth",
        level: "warning",
        message:
          "Authorization may be unsafe, passed state was changed in server. The passed state wasn't returned from auth server.",
      });
    }

    if (qp.code) {
      delete oauth2.state;
      oauth2.auth.code = qp.code;
      oauth2.callback({ auth: oauth2.auth, redirectUrl: redirectUrl });
    } else {
      let oauthErrorMsg;
      if (qp.error) {
        oauthErrorMsg =
          "[" + qp.error + "]: " +
          (qp.error_description ? qp.error_description + ". " : "no accessCode received from the server. ") +
          (qp.error_uri ? "More info: " + qp.error_uri : "");
      }

      oauth2.errCb({
        authId: oauth2.auth.name,
        source: "auth",
        level: "error",
        message: oauthErrorMsg || "[Authorization failed]: no accessCode received from the server.",
      });
    }
  } else {
    oauth2.callback({ auth: oauth2.auth, token: qp, isValid: isValid, redirectUrl: redirectUrl });
  }
  window.close();
}

if (document.readyState !== "loading") {
  run();
} else {
  document.addEventListener("DOMContentLoaded", run);
}
