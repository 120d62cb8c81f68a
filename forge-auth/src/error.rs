//! forge-auth's errors, in GoTrue's catalogue (SERVER-BEHAVIOUR.md §2a) and shape.
//!
//! Every failure is a row of [`ErrorKind`]: GoTrue's `error_code` with the one HTTP status it
//! has in that situation. GoTrue answers some codes with more than one status (`user_banned`
//! is 400 on a sign-in grant and 403 elsewhere), so those codes have one row per situation;
//! no call site chooses a status. forge-core renders the body (GoTrue's shape, readable by
//! both client parsers); server errors are logged and answered generically.

use std::borrow::Cow;

use axum::response::{IntoResponse, Response};
use forge_core::error::{Entry, Problem};
use forge_core::{ErrorCode, ForgeError, WireFormat};
use http::StatusCode;
use serde_json::json;

/// The result type of forge-auth.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// forge-auth's error catalogue: one row per situation, each with GoTrue's `error_code` and
/// its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// validation_failed (400): malformed input: an email or phone number, a missing field, a bad page.
    ValidationFailed,
    /// validation_failed (422): the user's state does not allow it (an anonymous user setting a password alone).
    UserStateInvalid,
    /// bad_json (400): a body that is not JSON.
    BadJson,
    /// invalid_credentials (400): unknown user, wrong password, an unsupported grant type.
    InvalidCredentials,
    /// captcha_failed (400): the captcha token is missing or does not verify.
    CaptchaFailed,
    /// email_provider_disabled (400): email sign-ups or OTPs while email is off.
    EmailProviderDisabled,
    /// email_provider_disabled (422): the password grant with an email while email is off.
    EmailPasswordDisabled,
    /// phone_provider_disabled (400): phone sign-ups or OTPs while phone is off.
    PhoneProviderDisabled,
    /// phone_provider_disabled (422): the password grant with a phone while phone is off.
    PhonePasswordDisabled,
    /// anonymous_provider_disabled (422): an anonymous sign-in while they are off.
    AnonymousProviderDisabled,
    /// signup_disabled (422): a new user while sign-ups are off.
    SignupDisabled,
    /// otp_disabled (422): /otp with create_user false for an unknown user.
    OtpDisabled,
    /// user_already_exists (422): a sign-up for a confirmed user with autoconfirm on.
    UserAlreadyExists,
    /// email_exists (422): another user has this email.
    EmailExists,
    /// phone_exists (422): another user has this phone number.
    PhoneExists,
    /// weak_password (422): a password too short, without the required characters, or known to be leaked.
    WeakPassword,
    /// same_password (422): a new password equal to the old one.
    SamePassword,
    /// current_password_invalid (400): a password change without the current password when it is required.
    CurrentPasswordInvalid,
    /// reauthentication_needed (400): a password change without a reauthentication nonce when it is required.
    ReauthenticationNeeded,
    /// reauthentication_not_valid (422): a wrong or expired reauthentication nonce.
    ReauthenticationNotValid,
    /// email_not_confirmed (422): reauthentication by an unconfirmed email.
    EmailNotConfirmed,
    /// email_not_confirmed (400): the password grant for an unconfirmed email.
    EmailNotConfirmedAtSignIn,
    /// phone_not_confirmed (422): reauthentication by an unconfirmed phone.
    PhoneNotConfirmed,
    /// phone_not_confirmed (400): the password grant for an unconfirmed phone.
    PhoneNotConfirmedAtSignIn,
    /// user_banned (403): a banned user on an authenticated route or a verify.
    UserBanned,
    /// user_banned (400): a banned user on the password, PKCE or refresh grant.
    UserBannedAtSignIn,
    /// otp_expired (403): a wrong or expired one-time code or link.
    OtpExpired,
    /// sms_send_failed (422): the SMS provider refused the message.
    SmsSendFailed,
    /// email_address_not_authorized (400): an address the project does not send to or admit.
    EmailAddressNotAuthorized,
    /// no_authorization (401): no valid Bearer token on a route that needs one.
    NoAuthorization,
    /// bad_jwt (403): a token that does not verify, has expired or lacks a claim.
    BadJwt,
    /// bad_jwt (400): a token whose sub is not a UUID.
    BadJwtSubject,
    /// user_not_found (403): a token whose user no longer exists.
    UserFromJwtNotFound,
    /// user_not_found (404): the admin API names no such user.
    UserNotFound,
    /// session_not_found (403): a token whose session no longer exists.
    SessionNotFound,
    /// session_not_found (400): a refresh token whose session is gone.
    SessionNotFoundOnRefresh,
    /// session_expired (400): a refresh token whose session timed out.
    SessionExpired,
    /// refresh_token_not_found (400): an unknown refresh token.
    RefreshTokenNotFound,
    /// refresh_token_already_used (400): a refresh token reused outside the reuse interval.
    RefreshTokenAlreadyUsed,
    /// not_admin (403): an admin route without an admin role.
    NotAdmin,
    /// not_found (404): no such route.
    NotFound,
    /// bad_oauth_state (400): an OAuth callback without a valid state.
    BadOauthState,
    /// bad_oauth_callback (400): an OAuth callback with an error, no code, or a failed profile fetch.
    BadOauthCallback,
    /// oauth_client_state_expired (422): an OAuth callback after the state expired.
    OauthClientStateExpired,
    /// provider_disabled (400): an OAuth provider that is not enabled.
    ProviderDisabled,
    /// provider_email_needs_verification (422): a provider's unverified email that would link to an existing user.
    ProviderEmailNeedsVerification,
    /// identity_already_exists (422): an identity linked to another user.
    IdentityAlreadyExists,
    /// identity_not_found (422): unlinking an identity the user does not have.
    IdentityNotFound,
    /// single_identity_not_deletable (422): unlinking a user's last identity.
    SingleIdentityNotDeletable,
    /// manual_linking_disabled (404): linking or unlinking an identity while manual linking is off.
    ManualLinkingDisabled,
    /// flow_state_not_found (404): a PKCE auth code with no flow state.
    FlowStateNotFound,
    /// flow_state_expired (422): a PKCE auth code past its lifetime.
    FlowStateExpired,
    /// bad_code_verifier (400): a PKCE code verifier that does not match the challenge.
    BadCodeVerifier,
    /// insufficient_aal (403): enrolling a factor from an AAL1 session when one is verified.
    InsufficientAal,
    /// insufficient_aal (401): changing email or password from an AAL1 session with MFA on.
    InsufficientAalForUpdate,
    /// insufficient_aal (422): unenrolling a verified factor from an AAL1 session.
    InsufficientAalToUnenroll,
    /// mfa_factor_not_found (404): no such factor, or a challenge of another factor.
    MfaFactorNotFound,
    /// mfa_factor_name_conflict (422): a friendly name another factor of the user has.
    MfaFactorNameConflict,
    /// too_many_enrolled_mfa_factors (422): more factors than the project allows.
    TooManyEnrolledMfaFactors,
    /// mfa_challenge_expired (422): no such challenge, or one past its lifetime.
    MfaChallengeExpired,
    /// mfa_verification_failed (422): a wrong TOTP or phone code.
    MfaVerificationFailed,
    /// mfa_phone_enroll_not_enabled (422): phone MFA enrolment while it is off.
    MfaPhoneEnrollNotEnabled,
    /// mfa_phone_verify_not_enabled (422): phone MFA verification while it is off.
    MfaPhoneVerifyNotEnabled,
    /// mfa_webauthn_enroll_not_enabled (422): WebAuthn enrolment (not supported).
    MfaWebauthnEnrollNotEnabled,
    /// hook_timeout (422): the custom access token hook ran past its time limit.
    HookTimeout,
    /// unexpected_failure (400): the custom access token hook returned an error (its 4xx http_code is sent).
    HookRejected,
    /// user_store_refused (422): a custom user store refused the change under a code of its own.
    RefusedByStore,
    /// over_request_rate_limit (429): too many requests from one client.
    OverRequestRateLimit,
    /// over_email_send_rate_limit (429): the project's email budget is spent, or a re-send too soon.
    OverEmailSendRateLimit,
    /// over_sms_send_rate_limit (429): the project's SMS budget is spent, or a re-send too soon.
    OverSmsSendRateLimit,
}

impl ErrorKind {
    /// The catalogue: this kind's code, status and when it is answered.
    #[rustfmt::skip]
    pub const fn entry(self) -> Entry {
        use ErrorKind::*;
        let (code, status, when) = match self {
            ValidationFailed               => ("validation_failed",                 400, "malformed input: an email or phone number, a missing field, a bad page"),
            UserStateInvalid               => ("validation_failed",                 422, "the user's state does not allow it (an anonymous user setting a password alone)"),
            BadJson                        => ("bad_json",                          400, "a body that is not JSON"),
            InvalidCredentials             => ("invalid_credentials",               400, "unknown user, wrong password, an unsupported grant type"),
            CaptchaFailed                  => ("captcha_failed",                    400, "the captcha token is missing or does not verify"),
            EmailProviderDisabled          => ("email_provider_disabled",           400, "email sign-ups or OTPs while email is off"),
            EmailPasswordDisabled          => ("email_provider_disabled",           422, "the password grant with an email while email is off"),
            PhoneProviderDisabled          => ("phone_provider_disabled",           400, "phone sign-ups or OTPs while phone is off"),
            PhonePasswordDisabled          => ("phone_provider_disabled",           422, "the password grant with a phone while phone is off"),
            AnonymousProviderDisabled      => ("anonymous_provider_disabled",       422, "an anonymous sign-in while they are off"),
            SignupDisabled                 => ("signup_disabled",                   422, "a new user while sign-ups are off"),
            OtpDisabled                    => ("otp_disabled",                      422, "/otp with create_user false for an unknown user"),
            UserAlreadyExists              => ("user_already_exists",               422, "a sign-up for a confirmed user with autoconfirm on"),
            EmailExists                    => ("email_exists",                      422, "another user has this email"),
            PhoneExists                    => ("phone_exists",                      422, "another user has this phone number"),
            WeakPassword                   => ("weak_password",                     422, "a password too short, without the required characters, or known to be leaked"),
            SamePassword                   => ("same_password",                     422, "a new password equal to the old one"),
            CurrentPasswordInvalid         => ("current_password_invalid",          400, "a password change without the current password when it is required"),
            ReauthenticationNeeded         => ("reauthentication_needed",           400, "a password change without a reauthentication nonce when it is required"),
            ReauthenticationNotValid       => ("reauthentication_not_valid",        422, "a wrong or expired reauthentication nonce"),
            EmailNotConfirmed              => ("email_not_confirmed",               422, "reauthentication by an unconfirmed email"),
            EmailNotConfirmedAtSignIn      => ("email_not_confirmed",               400, "the password grant for an unconfirmed email"),
            PhoneNotConfirmed              => ("phone_not_confirmed",               422, "reauthentication by an unconfirmed phone"),
            PhoneNotConfirmedAtSignIn      => ("phone_not_confirmed",               400, "the password grant for an unconfirmed phone"),
            UserBanned                     => ("user_banned",                       403, "a banned user on an authenticated route or a verify"),
            UserBannedAtSignIn             => ("user_banned",                       400, "a banned user on the password, PKCE or refresh grant"),
            OtpExpired                     => ("otp_expired",                       403, "a wrong or expired one-time code or link"),
            SmsSendFailed                  => ("sms_send_failed",                   422, "the SMS provider refused the message"),
            EmailAddressNotAuthorized      => ("email_address_not_authorized",      400, "an address the project does not send to or admit"),
            NoAuthorization                => ("no_authorization",                  401, "no valid Bearer token on a route that needs one"),
            BadJwt                         => ("bad_jwt",                           403, "a token that does not verify, has expired or lacks a claim"),
            BadJwtSubject                  => ("bad_jwt",                           400, "a token whose sub is not a UUID"),
            UserFromJwtNotFound            => ("user_not_found",                    403, "a token whose user no longer exists"),
            UserNotFound                   => ("user_not_found",                    404, "the admin API names no such user"),
            SessionNotFound                => ("session_not_found",                 403, "a token whose session no longer exists"),
            SessionNotFoundOnRefresh       => ("session_not_found",                 400, "a refresh token whose session is gone"),
            SessionExpired                 => ("session_expired",                   400, "a refresh token whose session timed out"),
            RefreshTokenNotFound           => ("refresh_token_not_found",           400, "an unknown refresh token"),
            RefreshTokenAlreadyUsed        => ("refresh_token_already_used",        400, "a refresh token reused outside the reuse interval"),
            NotAdmin                       => ("not_admin",                         403, "an admin route without an admin role"),
            NotFound                       => ("not_found",                         404, "no such route"),
            BadOauthState                  => ("bad_oauth_state",                   400, "an OAuth callback without a valid state"),
            BadOauthCallback               => ("bad_oauth_callback",                400, "an OAuth callback with an error, no code, or a failed profile fetch"),
            OauthClientStateExpired        => ("oauth_client_state_expired",        422, "an OAuth callback after the state expired"),
            ProviderDisabled               => ("provider_disabled",                 400, "an OAuth provider that is not enabled"),
            ProviderEmailNeedsVerification => ("provider_email_needs_verification", 422, "a provider's unverified email that would link to an existing user"),
            IdentityAlreadyExists          => ("identity_already_exists",           422, "an identity linked to another user"),
            IdentityNotFound               => ("identity_not_found",                422, "unlinking an identity the user does not have"),
            SingleIdentityNotDeletable     => ("single_identity_not_deletable",     422, "unlinking a user's last identity"),
            ManualLinkingDisabled          => ("manual_linking_disabled",           404, "linking or unlinking an identity while manual linking is off"),
            FlowStateNotFound              => ("flow_state_not_found",              404, "a PKCE auth code with no flow state"),
            FlowStateExpired               => ("flow_state_expired",                422, "a PKCE auth code past its lifetime"),
            BadCodeVerifier                => ("bad_code_verifier",                 400, "a PKCE code verifier that does not match the challenge"),
            InsufficientAal                => ("insufficient_aal",                  403, "enrolling a factor from an AAL1 session when one is verified"),
            InsufficientAalForUpdate       => ("insufficient_aal",                  401, "changing email or password from an AAL1 session with MFA on"),
            InsufficientAalToUnenroll      => ("insufficient_aal",                  422, "unenrolling a verified factor from an AAL1 session"),
            MfaFactorNotFound              => ("mfa_factor_not_found",              404, "no such factor, or a challenge of another factor"),
            MfaFactorNameConflict          => ("mfa_factor_name_conflict",          422, "a friendly name another factor of the user has"),
            TooManyEnrolledMfaFactors      => ("too_many_enrolled_mfa_factors",     422, "more factors than the project allows"),
            MfaChallengeExpired            => ("mfa_challenge_expired",             422, "no such challenge, or one past its lifetime"),
            MfaVerificationFailed          => ("mfa_verification_failed",           422, "a wrong TOTP or phone code"),
            MfaPhoneEnrollNotEnabled       => ("mfa_phone_enroll_not_enabled",      422, "phone MFA enrolment while it is off"),
            MfaPhoneVerifyNotEnabled       => ("mfa_phone_verify_not_enabled",      422, "phone MFA verification while it is off"),
            MfaWebauthnEnrollNotEnabled    => ("mfa_webauthn_enroll_not_enabled",   422, "WebAuthn enrolment (not supported)"),
            HookTimeout                    => ("hook_timeout",                      422, "the custom access token hook ran past its time limit"),
            HookRejected                   => ("unexpected_failure",                400, "the custom access token hook returned an error (its 4xx http_code is sent)"),
            RefusedByStore                 => ("user_store_refused",                422, "a custom user store refused the change under a code of its own"),
            OverRequestRateLimit           => ("over_request_rate_limit",           429, "too many requests from one client"),
            OverEmailSendRateLimit         => ("over_email_send_rate_limit",        429, "the project's email budget is spent, or a re-send too soon"),
            OverSmsSendRateLimit           => ("over_sms_send_rate_limit",          429, "the project's SMS budget is spent, or a re-send too soon"),
        };
        Entry { code, status, when }
    }

    /// Every kind, for documentation and tests.
    pub const ALL: &'static [ErrorKind] = &[
        ErrorKind::ValidationFailed,
        ErrorKind::UserStateInvalid,
        ErrorKind::BadJson,
        ErrorKind::InvalidCredentials,
        ErrorKind::CaptchaFailed,
        ErrorKind::EmailProviderDisabled,
        ErrorKind::EmailPasswordDisabled,
        ErrorKind::PhoneProviderDisabled,
        ErrorKind::PhonePasswordDisabled,
        ErrorKind::AnonymousProviderDisabled,
        ErrorKind::SignupDisabled,
        ErrorKind::OtpDisabled,
        ErrorKind::UserAlreadyExists,
        ErrorKind::EmailExists,
        ErrorKind::PhoneExists,
        ErrorKind::WeakPassword,
        ErrorKind::SamePassword,
        ErrorKind::CurrentPasswordInvalid,
        ErrorKind::ReauthenticationNeeded,
        ErrorKind::ReauthenticationNotValid,
        ErrorKind::EmailNotConfirmed,
        ErrorKind::EmailNotConfirmedAtSignIn,
        ErrorKind::PhoneNotConfirmed,
        ErrorKind::PhoneNotConfirmedAtSignIn,
        ErrorKind::UserBanned,
        ErrorKind::UserBannedAtSignIn,
        ErrorKind::OtpExpired,
        ErrorKind::SmsSendFailed,
        ErrorKind::EmailAddressNotAuthorized,
        ErrorKind::NoAuthorization,
        ErrorKind::BadJwt,
        ErrorKind::BadJwtSubject,
        ErrorKind::UserFromJwtNotFound,
        ErrorKind::UserNotFound,
        ErrorKind::SessionNotFound,
        ErrorKind::SessionNotFoundOnRefresh,
        ErrorKind::SessionExpired,
        ErrorKind::RefreshTokenNotFound,
        ErrorKind::RefreshTokenAlreadyUsed,
        ErrorKind::NotAdmin,
        ErrorKind::NotFound,
        ErrorKind::BadOauthState,
        ErrorKind::BadOauthCallback,
        ErrorKind::OauthClientStateExpired,
        ErrorKind::ProviderDisabled,
        ErrorKind::ProviderEmailNeedsVerification,
        ErrorKind::IdentityAlreadyExists,
        ErrorKind::IdentityNotFound,
        ErrorKind::SingleIdentityNotDeletable,
        ErrorKind::ManualLinkingDisabled,
        ErrorKind::FlowStateNotFound,
        ErrorKind::FlowStateExpired,
        ErrorKind::BadCodeVerifier,
        ErrorKind::InsufficientAal,
        ErrorKind::InsufficientAalForUpdate,
        ErrorKind::InsufficientAalToUnenroll,
        ErrorKind::MfaFactorNotFound,
        ErrorKind::MfaFactorNameConflict,
        ErrorKind::TooManyEnrolledMfaFactors,
        ErrorKind::MfaChallengeExpired,
        ErrorKind::MfaVerificationFailed,
        ErrorKind::MfaPhoneEnrollNotEnabled,
        ErrorKind::MfaPhoneVerifyNotEnabled,
        ErrorKind::MfaWebauthnEnrollNotEnabled,
        ErrorKind::HookTimeout,
        ErrorKind::HookRejected,
        ErrorKind::RefusedByStore,
        ErrorKind::OverRequestRateLimit,
        ErrorKind::OverEmailSendRateLimit,
        ErrorKind::OverSmsSendRateLimit,
    ];
}

/// An auth API error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A client error: a row of the catalogue and a client-safe message.
    #[error("{message}")]
    Api {
        /// Which error: GoTrue's code and its status.
        kind: ErrorKind,
        /// A client-safe message.
        message: Cow<'static, str>,
        /// `weak_password.reasons`, for `weak_password`.
        reasons: Vec<&'static str>,
    },
    /// The custom access token hook refused with a 4xx `http_code` of its own, which GoTrue
    /// passes on.
    #[error("{message}")]
    Hook {
        /// The hook's status (always a 4xx).
        status: StatusCode,
        /// The hook's message.
        message: String,
    },
    /// A custom [`UserStore`](crate::UserStore) refused a change under a code of its own
    /// (answered with 422).
    #[error("{message}")]
    Store {
        /// The store's code, sent as `error_code`.
        code: &'static str,
        /// A client-safe message.
        message: Cow<'static, str>,
    },
    /// An error from forge-core (database unavailable, pool timeout, ...).
    #[error(transparent)]
    Core(#[from] ForgeError),
    /// Anything else: logged, never sent.
    #[error("internal error: {0}")]
    Internal(#[source] forge_core::error::BoxError),
}

impl Error {
    /// An error of `kind` with a client-safe message.
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Error::Api { kind, message: message.into(), reasons: Vec::new() }
    }

    /// A custom user store's refusal under its own `code` (422), for example a taken handle.
    pub fn store_refused(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Error::Store { code, message: message.into() }
    }

    /// The access token hook's refusal with its own 4xx status; anything else is internal.
    pub(crate) fn hook_refused(status: u16, message: String) -> Self {
        match StatusCode::from_u16(status) {
            Ok(status) if status.is_client_error() => Error::Hook { status, message },
            _ => Error::internal(format!("access token hook error: {message}")),
        }
    }

    /// A forge-core error as the auth routes report it: a database error is the server's
    /// fault there (logged, answered 500).
    pub(crate) fn from_core(e: ForgeError) -> Self {
        match e {
            ForgeError::Database(db) => Error::internal(db),
            other => Error::Core(other),
        }
    }

    /// An internal error; the cause is logged when rendered.
    pub fn internal(cause: impl Into<forge_core::error::BoxError>) -> Self {
        Error::Internal(cause.into())
    }

    /// 400 `validation_failed`.
    pub fn validation(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::ValidationFailed, message)
    }

    /// 400 `invalid_credentials`.
    pub fn invalid_credentials() -> Self {
        Self::new(ErrorKind::InvalidCredentials, "Invalid login credentials")
    }

    /// 422 `weak_password` with its reasons, and GoTrue's message naming what is missing
    /// ("Password should be at least 8 characters.").
    pub fn weak_password(weak: crate::password::WeakPassword) -> Self {
        Error::Api { kind: ErrorKind::WeakPassword, message: weak.message().into(), reasons: weak.reasons }
    }

    /// 422 `email_exists`.
    pub fn email_exists() -> Self {
        Self::new(ErrorKind::EmailExists, "A user with this email address has already been registered")
    }

    /// 404 `user_not_found`.
    pub fn user_not_found() -> Self {
        Self::new(ErrorKind::UserNotFound, "User not found")
    }

    /// 403 `otp_expired`.
    pub fn otp_expired() -> Self {
        Self::new(ErrorKind::OtpExpired, "Token has expired or is invalid")
    }

    /// 403 `not_admin`.
    pub fn not_admin() -> Self {
        Self::new(ErrorKind::NotAdmin, "User not allowed")
    }

    /// 429 `over_request_rate_limit`.
    pub fn rate_limited() -> Self {
        Self::new(ErrorKind::OverRequestRateLimit, "Request rate limit reached")
    }

    /// 429 `kind` (an email or SMS send limit) for a re-send too soon.
    pub(crate) fn too_soon(kind: ErrorKind, seconds: u64) -> Self {
        Self::new(kind, format!("For security purposes, you can only request this after {seconds} seconds."))
    }

    /// Which catalogue row this error is, if it is one.
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            Error::Api { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.problem().status
    }

    /// GoTrue's `error_code`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Api { kind, .. } => kind.entry().code,
            Error::Hook { .. } => ErrorKind::HookRejected.entry().code,
            Error::Store { code, .. } => code,
            Error::Core(ForgeError::Database(_)) | Error::Core(ForgeError::Internal(_)) | Error::Internal(_) => {
                ErrorCode::Internal.info().gotrue
            }
            Error::Core(e) => e.code().info().gotrue,
        }
    }

    /// This error described for GoTrue's renderer.
    pub fn problem(&self) -> Problem {
        match self {
            Error::Api { kind, message, reasons } => {
                let entry = kind.entry();
                let problem = Problem::new(entry.status(), entry.code, message.clone());
                if *kind == ErrorKind::WeakPassword {
                    problem.with_extra("weak_password", json!({ "reasons": reasons, "message": message }))
                } else {
                    problem
                }
            }
            Error::Hook { status, message } => {
                Problem::new(*status, ErrorKind::HookRejected.entry().code, message.clone())
            }
            Error::Store { code, message } => {
                Problem::new(ErrorKind::RefusedByStore.entry().status(), *code, message.clone())
            }
            Error::Core(e) => e.problem(WireFormat::GoTrue, false),
            Error::Internal(_) => ForgeError::Internal("".into()).problem(WireFormat::GoTrue, false),
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::from_core(ForgeError::from(e))
    }
}

impl From<crate::password::HashError> for Error {
    fn from(e: crate::password::HashError) -> Self {
        Error::internal(e)
    }
}

impl From<forge_core::keys::KeyError> for Error {
    fn from(e: forge_core::keys::KeyError) -> Self {
        Error::internal(e)
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match self {
            Error::Core(e) => e.render(WireFormat::GoTrue, false),
            Error::Internal(cause) => ForgeError::Internal(cause).render(WireFormat::GoTrue, false),
            other => WireFormat::GoTrue.render(other.problem()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_situation_has_one_row_and_codes_keep_gotrue_statuses() {
        let mut seen = std::collections::HashSet::new();
        for kind in ErrorKind::ALL {
            let entry = kind.entry();
            assert!(seen.insert(*kind), "{kind:?} listed twice");
            assert!((400..500).contains(&entry.status), "{kind:?}");
            assert!(!entry.when.is_empty());
        }
        assert_eq!(ErrorKind::UserBanned.entry().status, 403);
        assert_eq!(ErrorKind::UserBannedAtSignIn.entry().status, 400);
        assert_eq!(ErrorKind::WeakPassword.entry().status, 422);
    }

    #[test]
    fn hook_refusals_keep_only_client_statuses() {
        assert_eq!(Error::hook_refused(418, "teapot".into()).status(), 418);
        assert_eq!(Error::hook_refused(503, "down".into()).status(), 500);
    }
}
