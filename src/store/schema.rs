//! The one diesel schema, shared by the SQLite and PostgreSQL migrations
//! (`migrations/sqlite`, `migrations/postgres`). Timestamps are Unix seconds (`BIGINT`).

diesel::table! {
    owners (id) {
        id -> Text,
        email -> Nullable<Text>,
        display_name -> Nullable<Text>,
        created_at -> BigInt,
        tokens_revoked_before -> Nullable<BigInt>,
    }
}

diesel::table! {
    clients (client_id) {
        client_id -> Text,
        status -> Text,
        owner_id -> Nullable<Text>,
        metadata -> Text,
        client_secret_hash -> Nullable<Text>,
        registration_token_hash -> Text,
        user_code -> Nullable<Text>,
        source_addr -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
        expires_at -> Nullable<BigInt>,
        tokens_revoked_before -> Nullable<BigInt>,
        key_thumbprints -> Nullable<Text>,
        suspended_by -> Nullable<Text>,
    }
}

diesel::table! {
    skills (audience) {
        audience -> Text,
        name -> Text,
        scopes -> Text,
        ttl_secs -> BigInt,
        require_dpop -> Bool,
        owner_id -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
        client_id -> Nullable<Text>,
        grant_policy -> Text,
        policy_needs_review -> Bool,
        proven_at -> Nullable<BigInt>,
        proof_error -> Nullable<Text>,
        delegate_audiences -> Text,
    }
}

diesel::table! {
    grants (client_id, audience) {
        client_id -> Text,
        audience -> Text,
        scopes -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    enrollment_tokens (id) {
        id -> Text,
        token_hash -> Text,
        owner_id -> Text,
        grants -> Text,
        uses_left -> Integer,
        expires_at -> BigInt,
        created_at -> BigInt,
    }
}

diesel::table! {
    signing_keys (kid) {
        kid -> Text,
        generation -> BigInt,
        alg -> Text,
        public_jwk -> Text,
        private_key_enc -> Text,
        created_at -> BigInt,
        activate_at -> BigInt,
    }
}

diesel::table! {
    revoked_tokens (jti) {
        jti -> Text,
        client_id -> Nullable<Text>,
        expires_at -> BigInt,
        revoked_at -> BigInt,
    }
}

diesel::table! {
    audit_events (id) {
        id -> BigInt,
        at -> BigInt,
        event -> Text,
        outcome -> Text,
        reason -> Nullable<Text>,
        client_id -> Nullable<Text>,
        owner_id -> Nullable<Text>,
        audience -> Nullable<Text>,
        jti -> Nullable<Text>,
        source_addr -> Nullable<Text>,
        request_id -> Nullable<Text>,
        detail -> Nullable<Text>,
    }
}

diesel::table! {
    sessions (id_hash) {
        id_hash -> Text,
        owner_id -> Text,
        csrf_token -> Text,
        created_at -> BigInt,
        last_seen_at -> BigInt,
    }
}

diesel::table! {
    login_states (state_hash) {
        state_hash -> Text,
        provider -> Text,
        nonce -> Text,
        pkce_verifier -> Text,
        return_to -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    consents (owner_id, client_id) {
        owner_id -> Text,
        client_id -> Text,
        grants -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    authorization_codes (code_id) {
        code_id -> Text,
        secret_hash -> Text,
        client_id -> Text,
        owner_id -> Text,
        redirect_uri -> Nullable<Text>,
        code_challenge -> Text,
        grants -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        used_at -> Nullable<BigInt>,
        family_id -> Nullable<Text>,
    }
}

diesel::table! {
    refresh_families (family_id) {
        family_id -> Text,
        client_id -> Text,
        owner_id -> Text,
        grants -> Text,
        dpop_jkt -> Nullable<Text>,
        created_at -> BigInt,
        expires_at -> BigInt,
        revoked_at -> Nullable<BigInt>,
        revoked_reason -> Nullable<Text>,
    }
}

diesel::table! {
    refresh_tokens (token_id) {
        token_id -> Text,
        secret_hash -> Text,
        family_id -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        used_at -> Nullable<BigInt>,
    }
}

diesel::joinable!(clients -> owners (owner_id));
diesel::joinable!(sessions -> owners (owner_id));
diesel::joinable!(grants -> clients (client_id));
diesel::joinable!(enrollment_tokens -> owners (owner_id));

diesel::allow_tables_to_appear_in_same_query!(
    owners,
    clients,
    skills,
    grants,
    enrollment_tokens,
    consents,
    authorization_codes,
    refresh_families,
    refresh_tokens,
    signing_keys,
    revoked_tokens,
    audit_events,
    sessions,
    login_states,
);
