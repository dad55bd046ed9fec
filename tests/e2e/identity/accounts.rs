use recapp_proto::identity::v1 as pb;
use recapp_tests::{Backend, TestIdentity, backend_test, identity::reason};
use tonic::Code;

const PASSWORD: &str = "correct horse battery staple";

async fn an_account_is_created_and_read_back(backend: Backend) {
    let app = TestIdentity::spawn(backend).await;
    let created = app.create_account("  Alice@Example.COM ", PASSWORD).await;
    assert_eq!(created.email, "alice@example.com");
    assert!(!created.totp_enrolled);

    let mut client = app.client.clone();
    let got = client
        .get_account(pb::GetAccountRequest {
            account_id: created.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .account
        .unwrap();
    assert_eq!(got, created);

    let found = client
        .lookup_account_by_email(pb::LookupAccountByEmailRequest {
            email: "ALICE@example.com".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .account
        .unwrap();
    assert_eq!(found.id, created.id);
}
backend_test!(an_account_is_created_and_read_back);
