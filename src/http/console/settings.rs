//! The owner's own settings: enrollment tokens and the kill switch.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};

use crate::http::console::guard::OwnerForm;
use crate::http::console::page::{ConsoleError, MessagePage, html, message};
use crate::service::{enrollment, owners};
use crate::state::AppState;

pub(super) async fn mint_enrollment(
    post: OwnerForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let (owner, form) = (&post.owner, &post.form);
    let minted = enrollment::mint(
        &state,
        &owner.caller,
        &owner.session.owner_id,
        form.grants(),
        form.get("uses").and_then(|u| u.parse().ok()),
        form.get("hours").and_then(|h| h.parse().ok()),
    )
    .await
    .map_err(owner.fail())?;
    Ok(html(
        StatusCode::OK,
        &MessagePage {
            chrome: owner.chrome.clone(),
            title: "Enrollment token".into(),
            message: format!(
                "Give this token to your agent; it registers with `Authorization: Bearer <token>` and is linked to you at once. It allows {} registration(s) within {} hour(s).",
                minted.uses, minted.hours
            ),
            secret: Some(minted.token),
            link: "/console".into(),
        },
    ))
}

pub(super) async fn kill_switch(
    post: OwnerForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let (owner, form) = (&post.owner, &post.form);
    if form.get("confirm") != Some("yes") {
        return Err(ConsoleError::page(
            &owner.chrome,
            StatusCode::BAD_REQUEST,
            "Not confirmed",
            "Tick the confirmation box to revoke all tokens.",
            "/console",
        ));
    }
    owners::revoke_all(&state, &owner.caller, &owner.session.owner_id)
        .await
        .map_err(owner.fail())?;
    Ok(message(
        owner.chrome.clone(),
        StatusCode::OK,
        "All tokens revoked",
        "Every token of every agent you own has stopped working.",
        "/console",
    ))
}
