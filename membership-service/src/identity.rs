//! The client side of the identity service: account lookups and the public
//! keys that verify access tokens. Every call carries this service's
//! credential, the W3C trace context and a deadline.

use std::{collections::HashMap, time::Duration};

use anyhow::Context;
use recapp_access_token::PublicKey;
use recapp_proto::identity::v1::{self as pb, identity_service_client::IdentityServiceClient};
use secrecy::{ExposeSecret, SecretString};
use tonic::{
    Request,
    metadata::{Ascii, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Channel, Endpoint},
};
use uuid::Uuid;

/// What membership needs to know about an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountInfo {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub totp_enrolled: bool,
}

#[derive(Clone)]
struct Outgoing {
    credential: MetadataValue<Ascii>,
    timeout: Duration,
}

impl Interceptor for Outgoing {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("x-recapp-service-token", self.credential.clone());
        recapp_telemetry::inject_trace_context(request.metadata_mut());
        request.set_timeout(self.timeout);
        Ok(request)
    }
}

#[derive(Clone)]
pub struct IdentityClient {
    client: IdentityServiceClient<InterceptedService<Channel, Outgoing>>,
}

impl IdentityClient {
    /// Connects lazily: membership starts (and verifies tokens from its key
    /// cache) while identity is still coming up.
    pub fn new(url: &str, credential: &SecretString, timeout: Duration) -> anyhow::Result<Self> {
        let channel = Endpoint::from_shared(url.to_owned())
            .context("the identity URL is not valid")?
            .connect_timeout(Duration::from_secs(3))
            .tcp_nodelay(true)
            .connect_lazy();
        let credential = MetadataValue::try_from(credential.expose_secret())
            .context("the identity service credential is not valid ASCII")?;
        Ok(Self {
            client: IdentityServiceClient::with_interceptor(
                channel,
                Outgoing {
                    credential,
                    timeout,
                },
            ),
        })
    }

    pub async fn signing_keys(&self) -> anyhow::Result<Vec<PublicKey>> {
        let response = self
            .client
            .clone()
            .get_signing_keys(pb::GetSigningKeysRequest {})
            .await
            .context("GetSigningKeys")?
            .into_inner();
        response
            .keys
            .into_iter()
            .map(|k| {
                let bytes: [u8; 32] = k
                    .public_key
                    .try_into()
                    .map_err(|_| anyhow::anyhow!("a published key is not 32 bytes"))?;
                Ok(PublicKey {
                    key_id: k.key_id,
                    bytes,
                })
            })
            .collect()
    }

    pub async fn get_account(&self, id: Uuid) -> anyhow::Result<Option<AccountInfo>> {
        match self
            .client
            .clone()
            .get_account(pb::GetAccountRequest {
                account_id: id.to_string(),
            })
            .await
        {
            Ok(response) => Ok(response.into_inner().account.and_then(info)),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
            Err(status) => Err(anyhow::Error::new(status).context("GetAccount")),
        }
    }

    /// Accounts by id (unknown ids are left out), in batches of 100.
    pub async fn batch_get(&self, ids: &[Uuid]) -> anyhow::Result<HashMap<Uuid, AccountInfo>> {
        let mut out = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(100) {
            let response = self
                .client
                .clone()
                .batch_get_accounts(pb::BatchGetAccountsRequest {
                    account_ids: chunk.iter().map(Uuid::to_string).collect(),
                })
                .await
                .context("BatchGetAccounts")?
                .into_inner();
            for account in response.accounts.into_iter().filter_map(info) {
                out.insert(account.id, account);
            }
        }
        Ok(out)
    }
}

fn info(account: pb::Account) -> Option<AccountInfo> {
    Some(AccountInfo {
        id: Uuid::parse_str(&account.id).ok()?,
        email: account.email,
        display_name: account.display_name,
        totp_enrolled: account.totp_enrolled,
    })
}
