
SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

CREATE FUNCTION public.gstack_resource_usage() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND NOT (OLD.project IS DISTINCT FROM NEW.project OR OLD.region IS DISTINCT FROM NEW.region OR OLD.collection IS DISTINCT FROM NEW.collection OR OLD.subtype IS DISTINCT FROM NEW.subtype OR OLD.vcpus IS DISTINCT FROM NEW.vcpus OR OLD.size_gb IS DISTINCT FROM NEW.size_gb OR (OLD.status = 'TERMINATED') IS DISTINCT FROM (NEW.status = 'TERMINATED')) THEN
    RETURN NULL;
  END IF;
  IF TG_OP IN ('UPDATE', 'DELETE') THEN INSERT INTO resource_usage (project, region, collection, subtype, count, cpus, size_gb) SELECT OLD.project, COALESCE(OLD.region, ''), OLD.collection, OLD.subtype, -1, -(CASE WHEN OLD.status <> 'TERMINATED' THEN OLD.vcpus ELSE 0 END), -OLD.size_gb WHERE OLD.collection IN ('instances', 'disks') ON CONFLICT (project, region, collection, subtype) DO UPDATE SET count = resource_usage.count + excluded.count, cpus = resource_usage.cpus + excluded.cpus, size_gb = resource_usage.size_gb + excluded.size_gb; END IF;
  IF TG_OP IN ('UPDATE', 'INSERT') THEN INSERT INTO resource_usage (project, region, collection, subtype, count, cpus, size_gb) SELECT NEW.project, COALESCE(NEW.region, ''), NEW.collection, NEW.subtype, 1, (CASE WHEN NEW.status <> 'TERMINATED' THEN NEW.vcpus ELSE 0 END), NEW.size_gb WHERE NEW.collection IN ('instances', 'disks') ON CONFLICT (project, region, collection, subtype) DO UPDATE SET count = resource_usage.count + excluded.count, cpus = resource_usage.cpus + excluded.cpus, size_gb = resource_usage.size_gb + excluded.size_gb; END IF;
  RETURN NULL;
END $$;

SET default_tablespace = '';

SET default_table_access_method = heap;

CREATE TABLE public.access_tokens (
    id integer NOT NULL,
    token_hash character varying(64) NOT NULL,
    principal_id integer NOT NULL,
    client_id character varying(255) NOT NULL,
    scopes text NOT NULL,
    expires double precision NOT NULL,
    revoked boolean NOT NULL,
    created double precision NOT NULL,
    refresh_token_id integer,
    "grant" character varying(64)
);

CREATE SEQUENCE public.access_tokens_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.access_tokens_id_seq OWNED BY public.access_tokens.id;

CREATE TABLE public.authorization_codes (
    id integer NOT NULL,
    code_hash character varying(64) NOT NULL,
    client_id character varying(255) NOT NULL,
    principal_id integer NOT NULL,
    redirect_uri text NOT NULL,
    scopes text NOT NULL,
    code_challenge character varying(128),
    code_challenge_method character varying(8),
    nonce character varying(255),
    offline boolean NOT NULL,
    used boolean NOT NULL,
    expires double precision NOT NULL,
    created double precision NOT NULL
);

CREATE SEQUENCE public.authorization_codes_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.authorization_codes_id_seq OWNED BY public.authorization_codes.id;

CREATE TABLE public.browser_sessions (
    id integer NOT NULL,
    token_hash character varying(64) NOT NULL,
    principal_id integer NOT NULL,
    expires double precision NOT NULL,
    created double precision NOT NULL
);

CREATE SEQUENCE public.browser_sessions_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.browser_sessions_id_seq OWNED BY public.browser_sessions.id;

CREATE TABLE public.clusters (
    id integer NOT NULL,
    pod_id integer NOT NULL,
    zone_id integer NOT NULL,
    name character varying(63) NOT NULL,
    hypervisor character varying(32) NOT NULL,
    cpu_overprovisioning double precision NOT NULL,
    memory_overprovisioning double precision NOT NULL
);

CREATE SEQUENCE public.clusters_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.clusters_id_seq OWNED BY public.clusters.id;

CREATE TABLE public.console_ticket_uses (
    id integer NOT NULL,
    digest character varying(64) NOT NULL,
    expires double precision NOT NULL
);

CREATE SEQUENCE public.console_ticket_uses_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.console_ticket_uses_id_seq OWNED BY public.console_ticket_uses.id;

CREATE TABLE public.device_authorizations (
    id integer NOT NULL,
    device_code_hash character varying(64) NOT NULL,
    user_code_hash character varying(64) NOT NULL,
    client_id character varying(255) NOT NULL,
    scopes text NOT NULL,
    principal_id integer,
    status character varying(16) NOT NULL,
    "interval" integer NOT NULL,
    last_poll double precision NOT NULL,
    expires double precision NOT NULL,
    created double precision NOT NULL
);

CREATE SEQUENCE public.device_authorizations_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.device_authorizations_id_seq OWNED BY public.device_authorizations.id;

CREATE TABLE public.hosts (
    id integer NOT NULL,
    cluster_id integer NOT NULL,
    zone_id integer NOT NULL,
    name character varying(255) NOT NULL,
    uri character varying(255) NOT NULL,
    cpus integer NOT NULL,
    memory_mb integer NOT NULL,
    cpu_platform character varying(64) NOT NULL,
    status character varying(16) NOT NULL,
    fail_next_spawns integer NOT NULL,
    options text,
    monitor_owner character varying(64),
    monitor_expiry double precision,
    failures integer,
    last_seen double precision,
    last_error character varying(255)
);

CREATE SEQUENCE public.hosts_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.hosts_id_seq OWNED BY public.hosts.id;

CREATE TABLE public.instance_group_members (
    id integer NOT NULL,
    group_uid bigint NOT NULL,
    instance_uid bigint NOT NULL,
    added double precision NOT NULL
);

CREATE SEQUENCE public.instance_group_members_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.instance_group_members_id_seq OWNED BY public.instance_group_members.id;

CREATE TABLE public.ip_allocations (
    id integer NOT NULL,
    pool character varying(120) NOT NULL,
    address bigint NOT NULL,
    owner_uid bigint NOT NULL
);

CREATE SEQUENCE public.ip_allocations_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.ip_allocations_id_seq OWNED BY public.ip_allocations.id;

CREATE TABLE public.memberships (
    id integer NOT NULL,
    project_id integer NOT NULL,
    principal_id integer NOT NULL,
    role character varying(32) NOT NULL
);

CREATE SEQUENCE public.memberships_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.memberships_id_seq OWNED BY public.memberships.id;

CREATE TABLE public.oauth_clients (
    id integer NOT NULL,
    client_id character varying(255) NOT NULL,
    secret_hash character varying(64),
    name character varying(255) NOT NULL,
    kind character varying(16) NOT NULL,
    redirect_uris text NOT NULL,
    created double precision NOT NULL
);

CREATE SEQUENCE public.oauth_clients_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.oauth_clients_id_seq OWNED BY public.oauth_clients.id;

CREATE TABLE public.operations (
    pk integer NOT NULL,
    uid bigint NOT NULL,
    name character varying(80) NOT NULL,
    project character varying(100) NOT NULL,
    scope character varying(80) NOT NULL,
    operation_type character varying(64) NOT NULL,
    target_link character varying(400) NOT NULL,
    target_id bigint,
    status character varying(16) NOT NULL,
    progress integer NOT NULL,
    status_message character varying(400),
    "user" character varying(255) NOT NULL,
    client_operation_id character varying(64),
    insert_time double precision NOT NULL,
    start_time double precision,
    end_time double precision,
    error text,
    http_error_status integer,
    http_error_message character varying(64),
    warnings text,
    job character varying(64) NOT NULL,
    params text NOT NULL,
    lease_owner character varying(64),
    lease_expiry double precision,
    attempts integer NOT NULL
);

CREATE SEQUENCE public.operations_pk_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.operations_pk_seq OWNED BY public.operations.pk;

CREATE TABLE public.pods (
    id integer NOT NULL,
    zone_id integer NOT NULL,
    name character varying(63) NOT NULL,
    cidr character varying(43) NOT NULL
);

CREATE SEQUENCE public.pods_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.pods_id_seq OWNED BY public.pods.id;

CREATE TABLE public.principals (
    id integer NOT NULL,
    kind character varying(16) NOT NULL,
    email character varying(255) NOT NULL,
    display_name character varying(255) NOT NULL,
    password_hash character varying(255),
    project_id integer,
    admin boolean NOT NULL,
    disabled boolean NOT NULL,
    created double precision NOT NULL
);

CREATE SEQUENCE public.principals_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.principals_id_seq OWNED BY public.principals.id;

CREATE TABLE public.projects (
    id integer NOT NULL,
    name character varying(100) NOT NULL,
    number bigint NOT NULL,
    created double precision NOT NULL,
    public boolean NOT NULL,
    common_metadata text NOT NULL,
    metadata_fingerprint character varying(16) NOT NULL,
    quota_limits text NOT NULL
);

CREATE SEQUENCE public.projects_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.projects_id_seq OWNED BY public.projects.id;

CREATE TABLE public.refresh_tokens (
    id integer NOT NULL,
    token_hash character varying(64) NOT NULL,
    principal_id integer NOT NULL,
    client_id character varying(255) NOT NULL,
    scopes text NOT NULL,
    "grant" character varying(64),
    revoked boolean NOT NULL,
    created double precision NOT NULL
);

CREATE SEQUENCE public.refresh_tokens_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.refresh_tokens_id_seq OWNED BY public.refresh_tokens.id;

CREATE TABLE public.regions (
    id integer NOT NULL,
    uid bigint NOT NULL,
    name character varying(63) NOT NULL,
    status character varying(16) NOT NULL
);

CREATE SEQUENCE public.regions_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.regions_id_seq OWNED BY public.regions.id;

CREATE TABLE public.resource_usage (
    project character varying(100) NOT NULL,
    region character varying(63) NOT NULL,
    collection character varying(40) NOT NULL,
    subtype character varying(64) NOT NULL,
    count integer NOT NULL,
    cpus integer NOT NULL,
    size_gb bigint NOT NULL
);

CREATE TABLE public.resources (
    pk integer NOT NULL,
    uid bigint NOT NULL,
    project character varying(100) NOT NULL,
    collection character varying(40) NOT NULL,
    scope character varying(80) NOT NULL,
    region character varying(63),
    name character varying(63) NOT NULL,
    status character varying(24) NOT NULL,
    subtype character varying(64) NOT NULL,
    created double precision NOT NULL,
    body text NOT NULL,
    host_id integer,
    pool_id integer,
    last_host_id integer,
    vcpus integer NOT NULL,
    memory_mb integer NOT NULL,
    size_gb bigint NOT NULL
);

CREATE SEQUENCE public.resources_pk_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.resources_pk_seq OWNED BY public.resources.pk;

CREATE TABLE public.secondary_objects (
    id integer NOT NULL,
    zone_id integer NOT NULL,
    kind character varying(16) NOT NULL,
    owner_uid bigint NOT NULL,
    source character varying(400) NOT NULL,
    size_bytes bigint NOT NULL,
    checksum character varying(64) NOT NULL,
    copied_by character varying(63) NOT NULL,
    created double precision NOT NULL
);

CREATE SEQUENCE public.secondary_objects_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.secondary_objects_id_seq OWNED BY public.secondary_objects.id;

CREATE TABLE public.service_account_keys (
    id integer NOT NULL,
    key_id character varying(64) NOT NULL,
    principal_id integer NOT NULL,
    public_pem text NOT NULL,
    disabled boolean NOT NULL,
    created double precision NOT NULL
);

CREATE SEQUENCE public.service_account_keys_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.service_account_keys_id_seq OWNED BY public.service_account_keys.id;

CREATE TABLE public.signing_keys (
    id integer NOT NULL,
    kid character varying(64) NOT NULL,
    private_pem text NOT NULL,
    created double precision NOT NULL
);

CREATE SEQUENCE public.signing_keys_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.signing_keys_id_seq OWNED BY public.signing_keys.id;

CREATE TABLE public.sim_cpu_loads (
    vm_uid bigint NOT NULL,
    busy double precision NOT NULL,
    since double precision NOT NULL,
    used double precision NOT NULL
);

CREATE SEQUENCE public.sim_cpu_loads_vm_uid_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.sim_cpu_loads_vm_uid_seq OWNED BY public.sim_cpu_loads.vm_uid;

CREATE TABLE public.sim_domains (
    id integer NOT NULL,
    instance_uid bigint NOT NULL,
    host_id integer NOT NULL,
    name character varying(255) NOT NULL,
    state character varying(16) NOT NULL,
    console text NOT NULL,
    console_dropped bigint NOT NULL,
    boots integer NOT NULL
);

CREATE SEQUENCE public.sim_domains_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.sim_domains_id_seq OWNED BY public.sim_domains.id;

CREATE TABLE public.sim_serving (
    instance_uid bigint NOT NULL,
    serving boolean NOT NULL
);

CREATE SEQUENCE public.sim_serving_instance_uid_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.sim_serving_instance_uid_seq OWNED BY public.sim_serving.instance_uid;

CREATE TABLE public.sim_vm_files (
    id integer NOT NULL,
    vm_uid bigint NOT NULL,
    host_id integer NOT NULL,
    path character varying(255) NOT NULL,
    content text NOT NULL,
    checksum character varying(64) NOT NULL,
    writes integer NOT NULL,
    written double precision NOT NULL
);

CREATE SEQUENCE public.sim_vm_files_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.sim_vm_files_id_seq OWNED BY public.sim_vm_files.id;

CREATE TABLE public.storage_pools (
    id integer NOT NULL,
    zone_id integer NOT NULL,
    cluster_id integer,
    name character varying(255) NOT NULL,
    capacity_gb bigint NOT NULL,
    overprovisioning double precision NOT NULL,
    status character varying(16) NOT NULL
);

CREATE SEQUENCE public.storage_pools_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.storage_pools_id_seq OWNED BY public.storage_pools.id;

CREATE TABLE public.system_settings (
    key character varying(64) NOT NULL,
    value text NOT NULL
);

CREATE TABLE public.system_vms (
    id integer NOT NULL,
    uid bigint NOT NULL,
    name character varying(63) NOT NULL,
    kind character varying(24) NOT NULL,
    role_key character varying(200) NOT NULL,
    zone_id integer NOT NULL,
    region character varying(63) NOT NULL,
    network_uid bigint,
    network_url character varying(400),
    project character varying(100),
    arch character varying(16) NOT NULL,
    state character varying(16) NOT NULL,
    public_ip character varying(45),
    conntrack_max integer,
    config_version integer NOT NULL,
    config_checksums text NOT NULL,
    pushed_version integer NOT NULL,
    pushed_checksums text NOT NULL,
    pushed_at double precision,
    last_error character varying(400),
    created double precision NOT NULL,
    updated double precision NOT NULL
);

CREATE SEQUENCE public.system_vms_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.system_vms_id_seq OWNED BY public.system_vms.id;

CREATE TABLE public.used_assertions (
    id integer NOT NULL,
    digest character varying(64) NOT NULL,
    expires double precision NOT NULL
);

CREATE SEQUENCE public.used_assertions_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.used_assertions_id_seq OWNED BY public.used_assertions.id;

CREATE TABLE public.zones (
    id integer NOT NULL,
    uid bigint NOT NULL,
    name character varying(63) NOT NULL,
    region_id integer NOT NULL,
    status character varying(16) NOT NULL,
    systemvm_arch character varying(16) NOT NULL
);

CREATE SEQUENCE public.zones_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.zones_id_seq OWNED BY public.zones.id;

ALTER TABLE ONLY public.access_tokens ALTER COLUMN id SET DEFAULT nextval('public.access_tokens_id_seq'::regclass);

ALTER TABLE ONLY public.authorization_codes ALTER COLUMN id SET DEFAULT nextval('public.authorization_codes_id_seq'::regclass);

ALTER TABLE ONLY public.browser_sessions ALTER COLUMN id SET DEFAULT nextval('public.browser_sessions_id_seq'::regclass);

ALTER TABLE ONLY public.clusters ALTER COLUMN id SET DEFAULT nextval('public.clusters_id_seq'::regclass);

ALTER TABLE ONLY public.console_ticket_uses ALTER COLUMN id SET DEFAULT nextval('public.console_ticket_uses_id_seq'::regclass);

ALTER TABLE ONLY public.device_authorizations ALTER COLUMN id SET DEFAULT nextval('public.device_authorizations_id_seq'::regclass);

ALTER TABLE ONLY public.hosts ALTER COLUMN id SET DEFAULT nextval('public.hosts_id_seq'::regclass);

ALTER TABLE ONLY public.instance_group_members ALTER COLUMN id SET DEFAULT nextval('public.instance_group_members_id_seq'::regclass);

ALTER TABLE ONLY public.ip_allocations ALTER COLUMN id SET DEFAULT nextval('public.ip_allocations_id_seq'::regclass);

ALTER TABLE ONLY public.memberships ALTER COLUMN id SET DEFAULT nextval('public.memberships_id_seq'::regclass);

ALTER TABLE ONLY public.oauth_clients ALTER COLUMN id SET DEFAULT nextval('public.oauth_clients_id_seq'::regclass);

ALTER TABLE ONLY public.operations ALTER COLUMN pk SET DEFAULT nextval('public.operations_pk_seq'::regclass);

ALTER TABLE ONLY public.pods ALTER COLUMN id SET DEFAULT nextval('public.pods_id_seq'::regclass);

ALTER TABLE ONLY public.principals ALTER COLUMN id SET DEFAULT nextval('public.principals_id_seq'::regclass);

ALTER TABLE ONLY public.projects ALTER COLUMN id SET DEFAULT nextval('public.projects_id_seq'::regclass);

ALTER TABLE ONLY public.refresh_tokens ALTER COLUMN id SET DEFAULT nextval('public.refresh_tokens_id_seq'::regclass);

ALTER TABLE ONLY public.regions ALTER COLUMN id SET DEFAULT nextval('public.regions_id_seq'::regclass);

ALTER TABLE ONLY public.resources ALTER COLUMN pk SET DEFAULT nextval('public.resources_pk_seq'::regclass);

ALTER TABLE ONLY public.secondary_objects ALTER COLUMN id SET DEFAULT nextval('public.secondary_objects_id_seq'::regclass);

ALTER TABLE ONLY public.service_account_keys ALTER COLUMN id SET DEFAULT nextval('public.service_account_keys_id_seq'::regclass);

ALTER TABLE ONLY public.signing_keys ALTER COLUMN id SET DEFAULT nextval('public.signing_keys_id_seq'::regclass);

ALTER TABLE ONLY public.sim_cpu_loads ALTER COLUMN vm_uid SET DEFAULT nextval('public.sim_cpu_loads_vm_uid_seq'::regclass);

ALTER TABLE ONLY public.sim_domains ALTER COLUMN id SET DEFAULT nextval('public.sim_domains_id_seq'::regclass);

ALTER TABLE ONLY public.sim_serving ALTER COLUMN instance_uid SET DEFAULT nextval('public.sim_serving_instance_uid_seq'::regclass);

ALTER TABLE ONLY public.sim_vm_files ALTER COLUMN id SET DEFAULT nextval('public.sim_vm_files_id_seq'::regclass);

ALTER TABLE ONLY public.storage_pools ALTER COLUMN id SET DEFAULT nextval('public.storage_pools_id_seq'::regclass);

ALTER TABLE ONLY public.system_vms ALTER COLUMN id SET DEFAULT nextval('public.system_vms_id_seq'::regclass);

ALTER TABLE ONLY public.used_assertions ALTER COLUMN id SET DEFAULT nextval('public.used_assertions_id_seq'::regclass);

ALTER TABLE ONLY public.zones ALTER COLUMN id SET DEFAULT nextval('public.zones_id_seq'::regclass);

INSERT INTO public.access_tokens VALUES
	(1, '492900455ccf2cdd59d41a6c3bddba8bf6db8963630e5291d1ad73751b63cc91', 2, '', 'https://www.googleapis.com/auth/cloud-platform', 1796286043.6756375, false, 1796282443.6756375, NULL, NULL);

INSERT INTO public.clusters VALUES
	(1, 1, 1, 'us-central1-a-sim1', 'simulator', 4, 1),
	(2, 2, 2, 'us-central1-b-sim1', 'simulator', 4, 1),
	(3, 3, 3, 'us-central1-c-sim1', 'simulator', 4, 1),
	(4, 4, 4, 'europe-west1-b-sim1', 'simulator', 4, 1);

INSERT INTO public.hosts VALUES
	(1, 1, 1, 'sim-us-central1-a-01', 'simulator://us-central1-a/1', 32, 131072, 'Intel Cascade Lake', 'Up', 0, NULL, NULL, NULL, NULL, NULL, NULL),
	(2, 1, 1, 'sim-us-central1-a-02', 'simulator://us-central1-a/2', 32, 131072, 'Intel Cascade Lake', 'Up', 0, NULL, NULL, NULL, NULL, NULL, NULL),
	(3, 1, 1, 'sim-us-central1-a-03', 'simulator://us-central1-a/3', 32, 131072, 'AMD Milan', 'Up', 0, NULL, NULL, NULL, NULL, NULL, NULL),
	(4, 1, 1, 'sim-us-central1-a-04', 'simulator://us-central1-a/4', 32, 131072, 'AMD Milan', 'Up', 0, NULL, NULL, NULL, NULL, NULL, NULL),
	(5, 2, 2, 'sim-us-central1-b-01', 'simulator://us-central1-b/1', 32, 131072, 'Intel Cascade Lake', 'Up', 0, NULL, NULL, NULL, NULL, NULL, NULL),
	(6, 2, 2, 'sim-us-central1-b-02', 'simulator://us-central1-b/2', 32, 131072, 'AMD Milan', 'Up', 0, NULL, NULL, NULL, NULL, NULL, NULL),
	(7, 2, 2, 'sim-us-central1-b-03', 'simulator://us-central1-b/3', 32, 131072, 'AMD Milan', 'Up', 0, NULL, NULL, NULL, NULL, NULL, NULL),
	(8, 2, 2, 'sim-us-central1-b-04', 'simulator://us-central1-b/4', 32, 131072, 'Intel Cascade Lake', 'Up', 0, NULL, NULL, NULL, NULL, NULL, NULL),
	(9, 3, 3, 'sim-us-central1-c-01', 'simulator://us-central1-c/1', 32, 131072, 'AMD Milan', 'Up', 0, NULL, NULL, NULL, NULL, NULL, NULL),
	(10, 3, 3, 'sim-us-central1-c-02', 'simulator://us-central1-c/2', 32, 131072, 'AMD Milan', 'Up', 0, NULL, NULL, NULL, NULL, NULL, NULL),
	(11, 3, 3, 'sim-us-central1-c-03', 'simulator://us-central1-c/3', 32, 131072, 'Intel Cascade Lake', 'Up', 0, NULL, NULL, NULL, NULL, NULL, NULL),
	(12, 3, 3, 'sim-us-central1-c-04', 'simulator://us-central1-c/4', 32, 131072, 'Intel Cascade Lake', 'Up', 0, NULL, NULL, NULL, NULL, NULL, NULL),
	(13, 4, 4, 'sim-europe-west1-b-01', 'simulator://europe-west1-b/1', 32, 131072, 'Intel Cascade Lake', 'Up', 0, NULL, NULL, NULL, NULL, NULL, NULL),
	(14, 4, 4, 'sim-europe-west1-b-02', 'simulator://europe-west1-b/2', 32, 131072, 'Intel Cascade Lake', 'Up', 0, NULL, NULL, NULL, NULL, NULL, NULL),
	(15, 4, 4, 'sim-europe-west1-b-03', 'simulator://europe-west1-b/3', 32, 131072, 'AMD Milan', 'Up', 0, NULL, NULL, NULL, NULL, NULL, NULL),
	(16, 4, 4, 'sim-europe-west1-b-04', 'simulator://europe-west1-b/4', 32, 131072, 'AMD Milan', 'Up', 0, NULL, NULL, NULL, NULL, NULL, NULL);

INSERT INTO public.ip_allocations VALUES
	(1, 'subnet:2739213561584794153', 176160770, 4730856824751050030),
	(2, 'subnet:2739213561584794153', 176160771, 8634657054170608387),
	(3, 'external:global', 3323199234, 3676997084270887653);

INSERT INTO public.memberships VALUES
	(1, 19, 1, 'roles/owner'),
	(2, 19, 2, 'roles/owner');

INSERT INTO public.operations VALUES
	(1, 78454837848049746, 'operation-1796282444345-448fde5d772ad-c72eba0d-d4928558', 'demo-project', 'zones/us-central1-a', 'insert', 'projects/demo-project/zones/us-central1-a/disks/data-1', 1274861169782457332, 'DONE', 100, NULL, 'gstack-admin@demo-project.iam.gserviceaccount.com', NULL, 1796282444.3456683, 1796282444.3456683, 1796282444.405218, NULL, NULL, NULL, NULL, 'disks.insert', '{"uids":[1274861169782457332],"zone_id":1}', NULL, NULL, 1),
	(2, 7890659936986837551, 'operation-1796282444749-26b67b0635c9a-1ef53071-adde46c9', 'demo-project', 'zones/us-central1-a', 'insert', 'projects/demo-project/zones/us-central1-a/instances/vm-1', 4730856824751050030, 'DONE', 100, NULL, 'gstack-admin@demo-project.iam.gserviceaccount.com', NULL, 1796282444.7491965, 1796282444.7491965, 1796282444.9109342, NULL, NULL, NULL, NULL, 'instances.run', '{"uid":4730856824751050030,"created_disks":[8636969284379033438],"zone_id":1,"delete_on_fail":true,"warnings":[]}', NULL, NULL, 1),
	(3, 3478755214458063481, 'operation-1796282444855-1afa0ceba72f7-0135a297-264c0155', 'gstack-system', 'global', 'systemvms.syncNetwork', 'projects/demo-project/global/networks/default', 4510548425725435788, 'DONE', 100, NULL, 'system', NULL, 1796282444.855616, 1796282444.855616, 1796282445.214595, NULL, NULL, NULL, NULL, 'systemvms.syncNetwork', '{"project":"demo-project","network":"https://www.googleapis.com/compute/v1/projects/demo-project/global/networks/default","network_uid":4510548425725435788,"started_at":1796282444.9130747,"render_seconds":0.2485}', NULL, NULL, 1),
	(5, 4055006128902292521, 'operation-1796282445263-d44ec6674b269-29f10e91-c8f0091e', 'gstack-system', 'global', 'systemvms.syncNetwork', 'projects/demo-project/global/networks/default', 4510548425725435788, 'PENDING', 0, NULL, 'system', NULL, 1796282445.2637722, 1796282445.2637722, NULL, NULL, NULL, NULL, NULL, 'systemvms.syncNetwork', '{"project":"demo-project","network":"https://www.googleapis.com/compute/v1/projects/demo-project/global/networks/default","network_uid":4510548425725435788}', NULL, 1796282447.3980746, 0),
	(4, 6503109626313246703, 'operation-1796282445210-3dc0af01d09ca-3148002a-b4e2fc6f', 'demo-project', 'zones/us-central1-a', 'insert', 'projects/demo-project/zones/us-central1-a/instances/vm-2', 8634657054170608387, 'DONE', 100, NULL, 'gstack-admin@demo-project.iam.gserviceaccount.com', NULL, 1796282445.210283, 1796282445.210283, 1796282445.3048017, NULL, NULL, NULL, NULL, 'instances.run', '{"uid":8634657054170608387,"created_disks":[7275200662539171036],"zone_id":1,"delete_on_fail":true,"warnings":[]}', NULL, NULL, 1),
	(6, 3677815312110699257, 'operation-1796282445341-cd086ad79d9c3-74c64449-822dec6b', 'demo-project', 'zones/us-central1-a', 'stop', 'projects/demo-project/zones/us-central1-a/instances/vm-2', 8634657054170608387, 'DONE', 100, NULL, 'gstack-admin@demo-project.iam.gserviceaccount.com', NULL, 1796282445.3416593, 1796282445.3416593, 1796282445.387152, NULL, NULL, NULL, NULL, 'instances.stop', '{"uid":8634657054170608387}', NULL, NULL, 1),
	(7, 8205325284192369197, 'operation-1796282445563-32b3e5fdb3f41-3ea3b966-33d51946', 'demo-project', 'global', 'insert', 'projects/demo-project/global/addresses/addr-1', 3676997084270887653, 'DONE', 100, NULL, 'gstack-admin@demo-project.iam.gserviceaccount.com', NULL, 1796282445.5636513, 1796282445.5636513, 1796282445.5636513, NULL, NULL, NULL, NULL, '', '{}', NULL, NULL, 0);

INSERT INTO public.pods VALUES
	(1, 1, 'us-central1-a-pod1', '192.168.208.0/24'),
	(2, 2, 'us-central1-b-pod1', '192.168.209.0/24'),
	(3, 3, 'us-central1-c-pod1', '192.168.210.0/24'),
	(4, 4, 'europe-west1-b-pod1', '192.168.53.0/24');

INSERT INTO public.principals VALUES
	(1, 'user', 'admin@gstack.local', 'gstack administrator', 'scrypt$32768$8$3$v62ArFYGIRYQX11Rjx8iGw==$K4j5LDCZMokkkJQmqoBKb3CjoxdaOmIN9FR7bF2Zi6A=', NULL, true, false, 1796282440.726323),
	(2, 'serviceAccount', 'gstack-admin@demo-project.iam.gserviceaccount.com', 'gstack administrator', NULL, 19, false, false, 1796282440.7973526);

INSERT INTO public.projects VALUES
	(1, 'almalinux-cloud', 982361814613, 1796282438.6611214, true, '[]', '', '{}'),
	(2, 'centos-cloud', 265477528976, 1796282438.666785, true, '[]', '', '{}'),
	(3, 'cos-cloud', 948053161698, 1796282438.6680136, true, '[]', '', '{}'),
	(4, 'debian-cloud', 758662686590, 1796282438.669096, true, '[]', '', '{}'),
	(5, 'fedora-coreos-cloud', 777338249875, 1796282438.67015, true, '[]', '', '{}'),
	(6, 'opensuse-cloud', 488715498417, 1796282438.6731863, true, '[]', '', '{}'),
	(7, 'oracle-linux-cloud', 691779650160, 1796282438.6742582, true, '[]', '', '{}'),
	(8, 'rhel-cloud', 776805295250, 1796282438.6750638, true, '[]', '', '{}'),
	(9, 'rhel-sap-cloud', 373156510928, 1796282438.6763775, true, '[]', '', '{}'),
	(10, 'rocky-linux-accelerator-cloud', 561728895599, 1796282438.6803336, true, '[]', '', '{}'),
	(11, 'rocky-linux-cloud', 937706150750, 1796282438.681523, true, '[]', '', '{}'),
	(12, 'suse-cloud', 356850997169, 1796282438.6851602, true, '[]', '', '{}'),
	(13, 'suse-sap-cloud', 670070463846, 1796282438.6862564, true, '[]', '', '{}'),
	(14, 'ubuntu-os-accelerator-images', 131764814026, 1796282438.6922703, true, '[]', '', '{}'),
	(15, 'ubuntu-os-cloud', 699948244239, 1796282438.6933804, true, '[]', '', '{}'),
	(16, 'ubuntu-os-pro-cloud', 845940091066, 1796282438.6942668, true, '[]', '', '{}'),
	(17, 'windows-cloud', 467915188612, 1796282438.695322, true, '[]', '', '{}'),
	(18, 'windows-sql-cloud', 516009835993, 1796282438.7015502, true, '[]', '', '{}'),
	(19, 'demo-project', 737607631810, 1796282438.7251925, false, '[]', '', '{}'),
	(20, 'gstack-system', 432364785909, 1796282444.8537025, false, '[]', '', '{}');

INSERT INTO public.regions VALUES
	(1, 1000, 'us-central1', 'UP'),
	(2, 1100, 'europe-west1', 'UP');

INSERT INTO public.resource_usage VALUES
	('demo-project', 'us-central1', 'instances', 'e2-small', 1, 2, 0),
	('demo-project', 'us-central1', 'disks', 'pd-standard', 3, 0, 40),
	('demo-project', 'us-central1', 'instances', 'e2-micro', 1, 0, 0);

INSERT INTO public.resources VALUES
	(1, 2386698437960420113, 'debian-cloud', 'images', 'global', NULL, 'debian-11-bullseye-v20240709', 'READY', '', 1720483200, '{"kind":"compute#image","id":"2386698437960420113","creationTimestamp":"2024-07-08T17:00:00.000-07:00","name":"debian-11-bullseye-v20240709","description":"Debian, Debian GNU/Linux, 11 (bullseye), amd64 built on 20240709","sourceType":"RAW","rawDisk":{"source":"","containerType":"TAR"},"archiveSizeBytes":"2147483648","diskSizeGb":"10","licenses":["https://www.googleapis.com/compute/v1/projects/debian-cloud/global/licenses/debian-11"],"family":"debian-11","labels":{},"labelFingerprint":"yv7OvQoSJPA=","storageLocations":["eu","us","asia"],"architecture":"X86_64","guestOsFeatures":[{"type":"UEFI_COMPATIBLE"},{"type":"VIRTIO_SCSI_MULTIQUEUE"},{"type":"GVNIC"}],"selfLink":"https://www.googleapis.com/compute/v1/projects/debian-cloud/global/images/debian-11-bullseye-v20240709","status":"READY"}', NULL, NULL, NULL, 0, 0, 10),
	(2, 949018018343495717, 'debian-cloud', 'images', 'global', NULL, 'debian-11-bullseye-v20241009', 'READY', '', 1728432000, '{"kind":"compute#image","id":"949018018343495717","creationTimestamp":"2024-10-08T17:00:00.000-07:00","name":"debian-11-bullseye-v20241009","description":"Debian, Debian GNU/Linux, 11 (bullseye), amd64 built on 20241009","sourceType":"RAW","rawDisk":{"source":"","containerType":"TAR"},"archiveSizeBytes":"2147483648","diskSizeGb":"10","licenses":["https://www.googleapis.com/compute/v1/projects/debian-cloud/global/licenses/debian-11"],"family":"debian-11","labels":{},"labelFingerprint":"yv7OvQoSJPA=","storageLocations":["eu","us","asia"],"architecture":"X86_64","guestOsFeatures":[{"type":"UEFI_COMPATIBLE"},{"type":"VIRTIO_SCSI_MULTIQUEUE"},{"type":"GVNIC"}],"selfLink":"https://www.googleapis.com/compute/v1/projects/debian-cloud/global/images/debian-11-bullseye-v20241009","status":"READY"}', NULL, NULL, NULL, 0, 0, 10),
	(3, 6921317818589435325, 'debian-cloud', 'images', 'global', NULL, 'debian-12-bookworm-v20240709', 'READY', '', 1720483200, '{"kind":"compute#image","id":"6921317818589435325","creationTimestamp":"2024-07-08T17:00:00.000-07:00","name":"debian-12-bookworm-v20240709","description":"Debian, Debian GNU/Linux, 12 (bookworm), amd64 built on 20240709","sourceType":"RAW","rawDisk":{"source":"","containerType":"TAR"},"archiveSizeBytes":"2147483648","diskSizeGb":"10","licenses":["https://www.googleapis.com/compute/v1/projects/debian-cloud/global/licenses/debian-12"],"family":"debian-12","labels":{},"labelFingerprint":"yv7OvQoSJPA=","storageLocations":["eu","us","asia"],"architecture":"X86_64","guestOsFeatures":[{"type":"UEFI_COMPATIBLE"},{"type":"VIRTIO_SCSI_MULTIQUEUE"},{"type":"GVNIC"}],"selfLink":"https://www.googleapis.com/compute/v1/projects/debian-cloud/global/images/debian-12-bookworm-v20240709","status":"READY"}', NULL, NULL, NULL, 0, 0, 10),
	(4, 2373576100787536722, 'debian-cloud', 'images', 'global', NULL, 'debian-12-bookworm-v20241009', 'READY', '', 1728432000, '{"kind":"compute#image","id":"2373576100787536722","creationTimestamp":"2024-10-08T17:00:00.000-07:00","name":"debian-12-bookworm-v20241009","description":"Debian, Debian GNU/Linux, 12 (bookworm), amd64 built on 20241009","sourceType":"RAW","rawDisk":{"source":"","containerType":"TAR"},"archiveSizeBytes":"2147483648","diskSizeGb":"10","licenses":["https://www.googleapis.com/compute/v1/projects/debian-cloud/global/licenses/debian-12"],"family":"debian-12","labels":{},"labelFingerprint":"yv7OvQoSJPA=","storageLocations":["eu","us","asia"],"architecture":"X86_64","guestOsFeatures":[{"type":"UEFI_COMPATIBLE"},{"type":"VIRTIO_SCSI_MULTIQUEUE"},{"type":"GVNIC"}],"selfLink":"https://www.googleapis.com/compute/v1/projects/debian-cloud/global/images/debian-12-bookworm-v20241009","status":"READY"}', NULL, NULL, NULL, 0, 0, 10),
	(5, 2782190718004644970, 'ubuntu-os-cloud', 'images', 'global', NULL, 'ubuntu-2204-jammy-v20240927', 'READY', '', 1727395200, '{"kind":"compute#image","id":"2782190718004644970","creationTimestamp":"2024-09-26T17:00:00.000-07:00","name":"ubuntu-2204-jammy-v20240927","description":"Canonical, Ubuntu, 22.04 LTS, amd64 jammy image built on 2024-09-27","sourceType":"RAW","rawDisk":{"source":"","containerType":"TAR"},"archiveSizeBytes":"2147483648","diskSizeGb":"10","licenses":["https://www.googleapis.com/compute/v1/projects/ubuntu-os-cloud/global/licenses/ubuntu-2204-lts"],"family":"ubuntu-2204-lts","labels":{},"labelFingerprint":"yv7OvQoSJPA=","storageLocations":["eu","us","asia"],"architecture":"X86_64","guestOsFeatures":[{"type":"UEFI_COMPATIBLE"},{"type":"VIRTIO_SCSI_MULTIQUEUE"},{"type":"GVNIC"}],"selfLink":"https://www.googleapis.com/compute/v1/projects/ubuntu-os-cloud/global/images/ubuntu-2204-jammy-v20240927","status":"READY"}', NULL, NULL, NULL, 0, 0, 10),
	(6, 6300487606796918883, 'ubuntu-os-cloud', 'images', 'global', NULL, 'ubuntu-2404-noble-amd64-v20241004', 'READY', '', 1728000000, '{"kind":"compute#image","id":"6300487606796918883","creationTimestamp":"2024-10-03T17:00:00.000-07:00","name":"ubuntu-2404-noble-amd64-v20241004","description":"Canonical, Ubuntu, 24.04 LTS, amd64 noble image built on 2024-10-04","sourceType":"RAW","rawDisk":{"source":"","containerType":"TAR"},"archiveSizeBytes":"2147483648","diskSizeGb":"10","licenses":["https://www.googleapis.com/compute/v1/projects/ubuntu-os-cloud/global/licenses/ubuntu-2404-lts-amd64"],"family":"ubuntu-2404-lts-amd64","labels":{},"labelFingerprint":"yv7OvQoSJPA=","storageLocations":["eu","us","asia"],"architecture":"X86_64","guestOsFeatures":[{"type":"UEFI_COMPATIBLE"},{"type":"VIRTIO_SCSI_MULTIQUEUE"},{"type":"GVNIC"}],"selfLink":"https://www.googleapis.com/compute/v1/projects/ubuntu-os-cloud/global/images/ubuntu-2404-noble-amd64-v20241004","status":"READY"}', NULL, NULL, NULL, 0, 0, 10),
	(8, 7814297759399733628, 'demo-project', 'routes', 'global', NULL, 'default-route-daf0d54a0658b7b0', '', 'default', 1796282438.7265153, '{"kind":"compute#route","id":"7814297759399733628","creationTimestamp":"2026-12-02T23:20:38.726-08:00","name":"default-route-daf0d54a0658b7b0","description":"Default route to the Internet.","network":"https://www.googleapis.com/compute/v1/projects/demo-project/global/networks/default","destRange":"0.0.0.0/0","priority":1000,"nextHopGateway":"https://www.googleapis.com/compute/v1/projects/demo-project/global/gateways/default-internet-gateway","routeType":"STATIC","selfLink":"https://www.googleapis.com/compute/v1/projects/demo-project/global/routes/default-route-daf0d54a0658b7b0"}', NULL, NULL, NULL, 0, 0, 0),
	(10, 679008398467101189, 'demo-project', 'routes', 'global', NULL, 'default-route-2e57cc08fcebf740', '', 'subnet', 1796282438.7335174, '{"kind":"compute#route","id":"679008398467101189","creationTimestamp":"2026-12-02T23:20:38.733-08:00","name":"default-route-2e57cc08fcebf740","description":"Default local route to the subnetwork 10.132.0.0/20.","network":"https://www.googleapis.com/compute/v1/projects/demo-project/global/networks/default","destRange":"10.132.0.0/20","priority":0,"nextHopNetwork":"https://www.googleapis.com/compute/v1/projects/demo-project/global/networks/default","routeType":"SUBNET","selfLink":"https://www.googleapis.com/compute/v1/projects/demo-project/global/routes/default-route-2e57cc08fcebf740"}', NULL, NULL, NULL, 0, 0, 0),
	(9, 8592115410562868529, 'demo-project', 'subnetworks', 'regions/europe-west1', 'europe-west1', 'default', '', '', 1796282438.7328684, '{"kind":"compute#subnetwork","id":"8592115410562868529","creationTimestamp":"2026-12-02T23:20:38.732-08:00","name":"default","network":"https://www.googleapis.com/compute/v1/projects/demo-project/global/networks/default","ipCidrRange":"10.132.0.0/20","gatewayAddress":"10.132.0.1","region":"https://www.googleapis.com/compute/v1/projects/demo-project/regions/europe-west1","privateIpGoogleAccess":false,"stackType":"IPV4_ONLY","purpose":"PRIVATE","selfLink":"https://www.googleapis.com/compute/v1/projects/demo-project/regions/europe-west1/subnetworks/default","fingerprint":"pl2oEerqBDk="}', NULL, NULL, NULL, 0, 0, 0),
	(12, 5347223126078147799, 'demo-project', 'routes', 'global', NULL, 'default-route-a15365012462d6fd', '', 'subnet', 1796282438.7379045, '{"kind":"compute#route","id":"5347223126078147799","creationTimestamp":"2026-12-02T23:20:38.737-08:00","name":"default-route-a15365012462d6fd","description":"Default local route to the subnetwork 10.128.0.0/20.","network":"https://www.googleapis.com/compute/v1/projects/demo-project/global/networks/default","destRange":"10.128.0.0/20","priority":0,"nextHopNetwork":"https://www.googleapis.com/compute/v1/projects/demo-project/global/networks/default","routeType":"SUBNET","selfLink":"https://www.googleapis.com/compute/v1/projects/demo-project/global/routes/default-route-a15365012462d6fd"}', NULL, NULL, NULL, 0, 0, 0),
	(13, 5825877473922734637, 'demo-project', 'firewalls', 'global', NULL, 'default-allow-internal', '', '', 1796282438.738292, '{"kind":"compute#firewall","id":"5825877473922734637","creationTimestamp":"2026-12-02T23:20:38.738-08:00","name":"default-allow-internal","description":"Allow internal traffic on the default network","network":"https://www.googleapis.com/compute/v1/projects/demo-project/global/networks/default","priority":65534,"sourceRanges":["10.128.0.0/9"],"allowed":[{"IPProtocol":"tcp","ports":["0-65535"]},{"IPProtocol":"udp","ports":["0-65535"]},{"IPProtocol":"icmp"}],"direction":"INGRESS","logConfig":{"enable":false},"disabled":false,"selfLink":"https://www.googleapis.com/compute/v1/projects/demo-project/global/firewalls/default-allow-internal"}', NULL, NULL, NULL, 0, 0, 0),
	(14, 3746572996905761357, 'demo-project', 'firewalls', 'global', NULL, 'default-allow-ssh', '', '', 1796282438.7385917, '{"kind":"compute#firewall","id":"3746572996905761357","creationTimestamp":"2026-12-02T23:20:38.738-08:00","name":"default-allow-ssh","description":"Allow SSH from anywhere","network":"https://www.googleapis.com/compute/v1/projects/demo-project/global/networks/default","priority":65534,"sourceRanges":["0.0.0.0/0"],"allowed":[{"IPProtocol":"tcp","ports":["22"]}],"direction":"INGRESS","logConfig":{"enable":false},"disabled":false,"selfLink":"https://www.googleapis.com/compute/v1/projects/demo-project/global/firewalls/default-allow-ssh"}', NULL, NULL, NULL, 0, 0, 0),
	(15, 6354057983793539673, 'demo-project', 'firewalls', 'global', NULL, 'default-allow-rdp', '', '', 1796282438.7388577, '{"kind":"compute#firewall","id":"6354057983793539673","creationTimestamp":"2026-12-02T23:20:38.738-08:00","name":"default-allow-rdp","description":"Allow RDP from anywhere","network":"https://www.googleapis.com/compute/v1/projects/demo-project/global/networks/default","priority":65534,"sourceRanges":["0.0.0.0/0"],"allowed":[{"IPProtocol":"tcp","ports":["3389"]}],"direction":"INGRESS","logConfig":{"enable":false},"disabled":false,"selfLink":"https://www.googleapis.com/compute/v1/projects/demo-project/global/firewalls/default-allow-rdp"}', NULL, NULL, NULL, 0, 0, 0),
	(16, 1504482550519744220, 'demo-project', 'firewalls', 'global', NULL, 'default-allow-icmp', '', '', 1796282438.7391193, '{"kind":"compute#firewall","id":"1504482550519744220","creationTimestamp":"2026-12-02T23:20:38.739-08:00","name":"default-allow-icmp","description":"Allow ICMP from anywhere","network":"https://www.googleapis.com/compute/v1/projects/demo-project/global/networks/default","priority":65534,"sourceRanges":["0.0.0.0/0"],"allowed":[{"IPProtocol":"icmp"}],"direction":"INGRESS","logConfig":{"enable":false},"disabled":false,"selfLink":"https://www.googleapis.com/compute/v1/projects/demo-project/global/firewalls/default-allow-icmp"}', NULL, NULL, NULL, 0, 0, 0),
	(7, 4510548425725435788, 'demo-project', 'networks', 'global', NULL, 'default', '', '', 1796282438.7260408, '{"kind":"compute#network","id":"4510548425725435788","creationTimestamp":"2026-12-02T23:20:38.726-08:00","name":"default","autoCreateSubnetworks":true,"routingConfig":{"bgpBestPathSelectionMode":"LEGACY","routingMode":"REGIONAL"},"mtu":1460,"networkFirewallPolicyEnforcementOrder":"AFTER_CLASSIC_FIREWALL","description":"Default network for the project","selfLink":"https://www.googleapis.com/compute/v1/projects/demo-project/global/networks/default","selfLinkWithId":"https://www.googleapis.com/compute/v1/projects/demo-project/global/networks/4510548425725435788","subnetworks":["https://www.googleapis.com/compute/v1/projects/demo-project/regions/europe-west1/subnetworks/default","https://www.googleapis.com/compute/v1/projects/demo-project/regions/us-central1/subnetworks/default"]}', NULL, NULL, NULL, 0, 0, 0),
	(11, 2739213561584794153, 'demo-project', 'subnetworks', 'regions/us-central1', 'us-central1', 'default', '', '', 1796282438.737411, '{"kind":"compute#subnetwork","id":"2739213561584794153","creationTimestamp":"2026-12-02T23:20:38.737-08:00","name":"default","network":"https://www.googleapis.com/compute/v1/projects/demo-project/global/networks/default","ipCidrRange":"10.128.0.0/20","gatewayAddress":"10.128.0.1","region":"https://www.googleapis.com/compute/v1/projects/demo-project/regions/us-central1","privateIpGoogleAccess":false,"stackType":"IPV4_ONLY","purpose":"PRIVATE","selfLink":"https://www.googleapis.com/compute/v1/projects/demo-project/regions/us-central1/subnetworks/default","fingerprint":"s55RtyRqjxM="}', NULL, NULL, NULL, 0, 0, 0),
	(17, 1274861169782457332, 'demo-project', 'disks', 'zones/us-central1-a', 'us-central1', 'data-1', 'READY', 'pd-standard', 1796282444.3429704, '{"kind":"compute#disk","id":"1274861169782457332","creationTimestamp":"2026-12-02T23:20:44.342-08:00","name":"data-1","description":"","sizeGb":"20","zone":"https://www.googleapis.com/compute/v1/projects/demo-project/zones/us-central1-a","type":"https://www.googleapis.com/compute/v1/projects/demo-project/zones/us-central1-a/diskTypes/pd-standard","labels":{"env":"prod"},"labelFingerprint":"DXs8DChy0nM=","physicalBlockSizeBytes":"4096","architecture":"X86_64","selfLink":"https://www.googleapis.com/compute/v1/projects/demo-project/zones/us-central1-a/disks/data-1","status":"READY"}', NULL, 1, NULL, 0, 0, 20),
	(18, 4730856824751050030, 'demo-project', 'instances', 'zones/us-central1-a', 'us-central1', 'vm-1', 'RUNNING', 'e2-small', 1796282444.7397764, '{"kind":"compute#instance","id":"4730856824751050030","creationTimestamp":"2026-12-02T23:20:44.739-08:00","name":"vm-1","description":"","tags":{"fingerprint":"0wXsbNIPBF0="},"machineType":"https://www.googleapis.com/compute/v1/projects/demo-project/zones/us-central1-a/machineTypes/e2-small","canIpForward":false,"networkInterfaces":[{"kind":"compute#networkInterface","name":"nic0","network":"https://www.googleapis.com/compute/v1/projects/demo-project/global/networks/default","subnetwork":"https://www.googleapis.com/compute/v1/projects/demo-project/regions/us-central1/subnetworks/default","networkIP":"10.128.0.2","stackType":"IPV4_ONLY","fingerprint":"_IWjdwgQS8Q="}],"disks":[{"kind":"compute#attachedDisk","type":"PERSISTENT","mode":"READ_WRITE","source":"https://www.googleapis.com/compute/v1/projects/demo-project/zones/us-central1-a/disks/vm-1","deviceName":"vm-1","index":0,"boot":true,"autoDelete":true,"interface":"SCSI","diskSizeGb":"10","architecture":"X86_64","licenses":["https://www.googleapis.com/compute/v1/projects/debian-cloud/global/licenses/debian-12"]}],"metadata":{"kind":"compute#metadata","fingerprint":"-ZYZb8t7Wi0="},"serviceAccounts":[],"selfLink":"https://www.googleapis.com/compute/v1/projects/demo-project/zones/us-central1-a/instances/vm-1","scheduling":{"onHostMaintenance":"MIGRATE","automaticRestart":true,"preemptible":false,"provisioningModel":"STANDARD"},"cpuPlatform":"Intel Cascade Lake","labels":{"env":"prod","team":"a"},"labelFingerprint":"XYk57GI0taY=","startRestricted":false,"deletionProtection":false,"zone":"https://www.googleapis.com/compute/v1/projects/demo-project/zones/us-central1-a","hostname":"vm-1.us-central1-a.c.demo-project.internal","shieldedInstanceConfig":{"enableSecureBoot":false,"enableVtpm":true,"enableIntegrityMonitoring":true},"keyRevocationActionType":"NONE","status":"RUNNING","fingerprint":"rC1txMpPkWQ=","lastStartTimestamp":"2026-12-02T23:20:44.910-08:00"}', 1, NULL, 1, 2, 2048, 0),
	(19, 8636969284379033438, 'demo-project', 'disks', 'zones/us-central1-a', 'us-central1', 'vm-1', 'READY', 'pd-standard', 1796282444.7425275, '{"kind":"compute#disk","id":"8636969284379033438","creationTimestamp":"2026-12-02T23:20:44.742-08:00","name":"vm-1","description":"","sourceImage":"https://www.googleapis.com/compute/v1/projects/debian-cloud/global/images/debian-12-bookworm-v20241009","sourceImageId":"2373576100787536722","licenses":["https://www.googleapis.com/compute/v1/projects/debian-cloud/global/licenses/debian-12"],"guestOsFeatures":[{"type":"UEFI_COMPATIBLE"},{"type":"VIRTIO_SCSI_MULTIQUEUE"},{"type":"GVNIC"}],"architecture":"X86_64","sizeGb":"10","zone":"https://www.googleapis.com/compute/v1/projects/demo-project/zones/us-central1-a","type":"https://www.googleapis.com/compute/v1/projects/demo-project/zones/us-central1-a/diskTypes/pd-standard","labels":{},"labelFingerprint":"yv7OvQoSJPA=","physicalBlockSizeBytes":"4096","users":["https://www.googleapis.com/compute/v1/projects/demo-project/zones/us-central1-a/instances/vm-1"],"lastAttachTimestamp":"2026-12-02T23:20:44.742-08:00","selfLink":"https://www.googleapis.com/compute/v1/projects/demo-project/zones/us-central1-a/disks/vm-1","status":"READY"}', NULL, 1, NULL, 0, 0, 10),
	(20, 2188807098263859761, 'gstack-system', 'systemvms', 'zones/us-central1-a', 'us-central1', 'r-3e98afe5318fdf8c-us-central1', 'Running', 'systemvm-x86_64', 1796282444.9036837, '{"kind":"gstack#router","id":"2188807098263859761","creationTimestamp":"2026-12-02T23:20:44.903-08:00","name":"r-3e98afe5318fdf8c-us-central1","role":"router","network":"https://www.googleapis.com/compute/v1/projects/demo-project/global/networks/default","template":"https://www.googleapis.com/compute/v1/projects/gstack-system/global/images/systemvm-x86_64","selfLink":"https://www.googleapis.com/compute/v1/projects/gstack-system/zones/us-central1-a/systemvms/r-3e98afe5318fdf8c-us-central1","status":"Running"}', 1, NULL, 1, 1, 512, 0),
	(22, 7275200662539171036, 'demo-project', 'disks', 'zones/us-central1-a', 'us-central1', 'vm-2', 'READY', 'pd-standard', 1796282445.2065332, '{"kind":"compute#disk","id":"7275200662539171036","creationTimestamp":"2026-12-02T23:20:45.206-08:00","name":"vm-2","description":"","sourceImage":"https://www.googleapis.com/compute/v1/projects/debian-cloud/global/images/debian-12-bookworm-v20241009","sourceImageId":"2373576100787536722","licenses":["https://www.googleapis.com/compute/v1/projects/debian-cloud/global/licenses/debian-12"],"guestOsFeatures":[{"type":"UEFI_COMPATIBLE"},{"type":"VIRTIO_SCSI_MULTIQUEUE"},{"type":"GVNIC"}],"architecture":"X86_64","sizeGb":"10","zone":"https://www.googleapis.com/compute/v1/projects/demo-project/zones/us-central1-a","type":"https://www.googleapis.com/compute/v1/projects/demo-project/zones/us-central1-a/diskTypes/pd-standard","labels":{},"labelFingerprint":"yv7OvQoSJPA=","physicalBlockSizeBytes":"4096","users":["https://www.googleapis.com/compute/v1/projects/demo-project/zones/us-central1-a/instances/vm-2"],"lastAttachTimestamp":"2026-12-02T23:20:45.206-08:00","selfLink":"https://www.googleapis.com/compute/v1/projects/demo-project/zones/us-central1-a/disks/vm-2","status":"READY"}', NULL, 1, NULL, 0, 0, 10),
	(21, 8634657054170608387, 'demo-project', 'instances', 'zones/us-central1-a', 'us-central1', 'vm-2', 'TERMINATED', 'e2-micro', 1796282445.2023118, '{"kind":"compute#instance","id":"8634657054170608387","creationTimestamp":"2026-12-02T23:20:45.202-08:00","name":"vm-2","description":"","tags":{"fingerprint":"0wXsbNIPBF0="},"machineType":"https://www.googleapis.com/compute/v1/projects/demo-project/zones/us-central1-a/machineTypes/e2-micro","canIpForward":false,"networkInterfaces":[{"kind":"compute#networkInterface","name":"nic0","network":"https://www.googleapis.com/compute/v1/projects/demo-project/global/networks/default","subnetwork":"https://www.googleapis.com/compute/v1/projects/demo-project/regions/us-central1/subnetworks/default","networkIP":"10.128.0.3","stackType":"IPV4_ONLY","fingerprint":"BIiQ2FbsdC4="}],"disks":[{"kind":"compute#attachedDisk","type":"PERSISTENT","mode":"READ_WRITE","source":"https://www.googleapis.com/compute/v1/projects/demo-project/zones/us-central1-a/disks/vm-2","deviceName":"vm-2","index":0,"boot":true,"autoDelete":true,"interface":"SCSI","diskSizeGb":"10","architecture":"X86_64","licenses":["https://www.googleapis.com/compute/v1/projects/debian-cloud/global/licenses/debian-12"]}],"metadata":{"kind":"compute#metadata","fingerprint":"-ZYZb8t7Wi0="},"serviceAccounts":[],"selfLink":"https://www.googleapis.com/compute/v1/projects/demo-project/zones/us-central1-a/instances/vm-2","scheduling":{"onHostMaintenance":"MIGRATE","automaticRestart":true,"preemptible":false,"provisioningModel":"STANDARD"},"cpuPlatform":"Intel Cascade Lake","labels":{},"labelFingerprint":"yv7OvQoSJPA=","startRestricted":false,"deletionProtection":false,"zone":"https://www.googleapis.com/compute/v1/projects/demo-project/zones/us-central1-a","hostname":"vm-2.us-central1-a.c.demo-project.internal","shieldedInstanceConfig":{"enableSecureBoot":false,"enableVtpm":true,"enableIntegrityMonitoring":true},"keyRevocationActionType":"NONE","status":"TERMINATED","fingerprint":"cMnAz7T7pjs=","lastStartTimestamp":"2026-12-02T23:20:45.304-08:00","lastStopTimestamp":"2026-12-02T23:20:45.386-08:00"}', NULL, NULL, 1, 2, 1024, 0),
	(23, 3676997084270887653, 'demo-project', 'addresses', 'global', NULL, 'addr-1', 'RESERVED', 'EXTERNAL', 1796282445.463577, '{"kind":"compute#address","id":"3676997084270887653","creationTimestamp":"2026-12-02T23:20:45.463-08:00","name":"addr-1","address":"198.19.255.2","addressType":"EXTERNAL","networkTier":"PREMIUM","ipVersion":"IPV4","labels":{},"labelFingerprint":"yv7OvQoSJPA=","selfLink":"https://www.googleapis.com/compute/v1/projects/demo-project/global/addresses/addr-1","status":"RESERVED"}', NULL, NULL, NULL, 0, 0, 0);

INSERT INTO public.service_account_keys VALUES
	(1, 'f1c1b07810e4241069f2f56f7dc28be024b03dd2', 2, '-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAn0oQxtjdEJkmRQ1YkA+N
4HX+pMHyaSc8OeO9R2LIs6wGaUbOQ/XYLKDGvl0wBUmdzS6rtaqbmB2aVDPBcdyz
RFT3/UnFQCoc6hfytLRERLTYbF+vxOL5+bypQExxzZTZYnW1ArXmOekZHtFnP9P0
NcV7cEhiPmdGeW7nTn6mEH4KCtcxNe/1cMM4mr8GfncWChTS2lAez2zSAZpEimvl
nYljf9GA9ekwIW0N/WqwRqmuE35xcdlRyPMCp8yKd+T/URdqANsuTifKS9xlYSXH
TjSnzpfZ4v4EeEJxii7MmSEbIP+JBvaReak7PGlCgEQKwJUaO2Tb/0BKcJpzFlXE
gwIDAQAB
', false, 1796282440.8586273);

INSERT INTO public.signing_keys VALUES
	(1, 'f08770ab8213598e75a51226f63033a93ea67441', '-----BEGIN PRIVATE KEY-----
MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQCeFd8knvagOq28
MKkhzBwci5NEoOoJxs7Ph9xgWnWAR0w5+33X1eDisufO+cK3Qv99Fx7G6voN4Slc
LcuTDT/+7FNi8gg2dWsNggl2NqjN3NUQ5mD3Jg4vbNEV+XJuJCXL7vmti1ZIrjv4
zkMx9TvLtPAYD5Q5DS0Ud9SboSR0AV2RLj1rQ/qslt4Cstn/cyuSqQHXZtEbNXNZ
Y9XEDxSJbI14HNJi4WgfOoRXQw3hinPKu428EsLkWTNks7++qDemox9/q8yK2eFZ
jCdGvgej6Ynt7h0ov5AoGMrua/VabzEM6jE7b7iU6MFptmMq6aVQoOT4U24JdlHm
+7c/kudjAgMBAAECggEAOgvN46R66lqhcHhtoftQVyro6EotpWlahtlcEgUlH/UO
CDxP+PCPoq4Ob/FFjgULyuKyalfdeTsz9KTcGyLCXNhpxesZGOYEaPFWiBGJ6g0s
Lwhokldm3gMWwvrVCZw8RKV7CD4hcI6JdtJF2hIx4pqNjkgqJMixxNI7PunseKtz
prWghU7CjcT8Fqyn2xmAAKaa3scYMeIx9B2UxHqyZzfOEj8APuA3p/dL/xEfG0x8
nBzdGeSe4zWlE2Hc0FXgKCm6+nbc4xnwtqWSKqmT0q9FavFIKAeEVnuZtflSGwST
/svV56YffjzUC/o8eq/RCm7GDGSgGcCwawVg4wOQAQKBgQDWa47l+F3EOFYvZP/i
szZ3geSgfgWbdkByb6auFExxBzdPrDIfoGYOGATAsf+naY55BRKiqB/o7RNhApHP
HJ7oKhTGgZUpHZHvl4WA1Y0JhAU2SYmil7HwMDBVmRXesL8o+F6U2Ayh8EAL9bOG
W7Xp4/o9QMc1dVj394Gyx++1VQKBgQC8vbGlzPMQtCwm1RhtrvIzyYxB+QS1uBSf
UGHTlFybqJFFLdH9rQe1LNaSug9Vp9xn9QxlDHDiu9H9LlBn7cCf2QvuZQwtXQnG
sBY3Sm2awpUXcsoQFacGdS9vW/E8kvpsz3DWZMqAeBo3ZuxN8tDiS0qQnpVHkxXA
9bZ8jFsp1wKBgFucrvxg5qcsrt4nGBFjIrVi4S0VSw4GMzjxrVSZRaPRQnefCfdr
T89bwcQXCTUdK4tXeIPYs3GQwYPkVioYf2iQejnqKbHceXrV0WufUlgreRKdztmS
WKtX237nHmn8OGCn5blQqe0Sujqh6udQDeR1zHgZUkPr9GxV6qtZM3jVAoGARszB
vvhKlZGAnnCBYWOm51ZLjtPiuGf9FGYKzFtzAdER7WlqxEYMBiJzu0agSflV7Ik3
xRANqH/cHaUp9FJzV4MLvrmY/8tOx4F2U/dPdiZX1xvwQGhe50U+Lf/HVnmsBvUp
1sKoU9i5vN6W9gaH5NtpdSaHyPmbx25krgPYjrECgYAOTXC10h5rr/4cKG9RIM37
4tDYzo/NjZEoE7pyT9P3+r5rCK3bvgXzzQ2XqWwZntEVQ1bALiwz08fmf6EAXcHx
lK9HdRYgaRvSSM+07127NoKfXpDwP+uUPQsrla9f0NlNAHUrs40X3BmO3/lw8OPD
zFscXIV51AvQYEWhwCHOGw==
', 1796282441.0150318);

INSERT INTO public.sim_domains VALUES
	(1, 4730856824751050030, 1, 'vm-1', 'running', 'SeaBIOS (version 1.16.3-debian-1.16.3-2)
Booting from Hard Disk 0... (boot 1)
[    0.000000] Linux version 6.1.0-28-cloud-amd64 (debian-kernel@lists.debian.org)
[    0.000000] Command line: BOOT_IMAGE=/boot/vmlinuz root=/dev/sda1 console=ttyS0,38400n8
[    0.012000] smpboot: Allowing 2 CPUs, 0 hotplug CPUs
[    0.013000] Memory: 2097152K available
[    1.200000] sd 0:0:0:0: [sda] 20971520 512-byte logical blocks
[    2.100000] virtio_net virtio1 nic0: MAC 42:01:0a:80:00:02
[    3.500000] systemd[1]: Started google-guest-agent.service - Google Compute Engine Guest Agent.
[    4.000000] google_metadata_script_runner: Starting startup scripts on vm-1.
Debian GNU/Linux 12 vm-1 ttyS0

vm-1 login: 
', 0, 1),
	(2, 2188807098263859761, 1, 'r-3e98afe5318fdf8c-us-central1', 'running', 'SeaBIOS (version 1.16.3-debian-1.16.3-2)
Booting from Hard Disk 0... (boot 1)
[    0.000000] Linux version 6.1.0-28-cloud-amd64 (debian-kernel@lists.debian.org)
[    0.000000] Command line: BOOT_IMAGE=/boot/vmlinuz root=/dev/sda1 console=ttyS0,38400n8
[    0.012000] smpboot: Allowing 1 CPUs, 0 hotplug CPUs
[    0.013000] Memory: 524288K available
[    1.200000] sd 0:0:0:0: [sda] 4194304 512-byte logical blocks
[    2.100000] virtio_net virtio1 eth0: MAC 42:02:85:de:f2:31
[    2.100000] virtio_net virtio1 eth1: MAC 42:01:0a:80:00:01
[    3.500000] systemd[1]: Started google-guest-agent.service - Google Compute Engine Guest Agent.
[    4.000000] google_metadata_script_runner: Starting startup scripts on r-3e98afe5318fdf8c-us-central1.
Debian GNU/Linux 12 r-3e98afe5318fdf8c-us-central1 ttyS0

r-3e98afe5318fdf8c-us-central1 login: 
[  OK  ] Reloaded configuration /etc/dnsmasq.d/gstack.conf.
[  OK  ] Reloaded configuration /etc/haproxy/haproxy.cfg.
[  OK  ] Reloaded configuration /etc/nftables.conf.
[  OK  ] Reloaded configuration /etc/sysctl.d/90-gstack.conf.
', 0, 1),
	(3, 8634657054170608387, 1, 'vm-2', 'shutoff', 'SeaBIOS (version 1.16.3-debian-1.16.3-2)
Booting from Hard Disk 0... (boot 1)
[    0.000000] Linux version 6.1.0-28-cloud-amd64 (debian-kernel@lists.debian.org)
[    0.000000] Command line: BOOT_IMAGE=/boot/vmlinuz root=/dev/sda1 console=ttyS0,38400n8
[    0.012000] smpboot: Allowing 2 CPUs, 0 hotplug CPUs
[    0.013000] Memory: 1048576K available
[    1.200000] sd 0:0:0:0: [sda] 20971520 512-byte logical blocks
[    2.100000] virtio_net virtio1 nic0: MAC 42:01:0a:80:00:03
[    3.500000] systemd[1]: Started google-guest-agent.service - Google Compute Engine Guest Agent.
[    4.000000] google_metadata_script_runner: Starting startup scripts on vm-2.
Debian GNU/Linux 12 vm-2 ttyS0

vm-2 login: 
[  OK  ] Reached target poweroff.target - System Power Off.
[   99.000000] reboot: Power down
', 0, 1);

INSERT INTO public.sim_vm_files VALUES
	(1, 2188807098263859761, 1, '/etc/dnsmasq.d/gstack.conf', '# gstack virtual router r-3e98afe5318fdf8c-us-central1: DHCP and DNS of demo-project/global/networks/default in us-central1.
# Rendered from the gstack database; edits are overwritten.
domain-needed
bogus-priv
no-resolv
no-hosts
bind-interfaces
except-interface=eth0
interface=eth1
server=8.8.8.8
server=8.8.4.4
# Names under .internal are answered here or not at all.
local=/internal/
dhcp-authoritative
dhcp-lease-max=2
dhcp-range=set:subnet1,10.128.0.0,static,255.255.240.0,infinite
dhcp-option=tag:subnet1,option:router,10.128.0.1
dhcp-option=tag:subnet1,option:dns-server,10.128.0.1
dhcp-option=tag:subnet1,option:mtu,1460
dhcp-option=tag:dom0,option:domain-name,us-central1-a.c.demo-project.internal
dhcp-option=tag:dom0,option:domain-search,us-central1-a.c.demo-project.internal,c.demo-project.internal,google.internal
dhcp-host=42:01:0a:80:00:02,set:dom0,10.128.0.2,vm-1,infinite
host-record=vm-1.us-central1-a.c.demo-project.internal,10.128.0.2
', '8df6d7216fac50146400f842950923f4a4675813810e795929ea0c83d9e3cf72', 1, 1796282445.1874118),
	(2, 2188807098263859761, 1, '/etc/nftables.conf', '#!/usr/sbin/nft -f
# gstack virtual router r-3e98afe5318fdf8c-us-central1: firewall and NAT of demo-project/global/networks/default in us-central1.
# Rendered from the gstack database; edits are overwritten. GCE firewall rules appear in the
# order they take effect: priority, then deny before allow.
flush ruleset

table ip gstack_filter {
    set vm_addrs {
        type ipv4_addr
        elements = { 10.128.0.2 }
    }

    # Instances with neither an external address nor a Cloud NAT: they have no way out.
    set no_egress {
        type ipv4_addr
        elements = { 10.128.0.2 }
    }

    # Traffic to instances. allow: accept, deny: drop.
    chain ingress {
        meta l4proto icmp counter accept comment "default-allow-icmp p65534"
        ip saddr 10.128.0.0/9 meta l4proto tcp counter accept comment "default-allow-internal p65534"
        ip saddr 10.128.0.0/9 meta l4proto udp counter accept comment "default-allow-internal p65534"
        ip saddr 10.128.0.0/9 meta l4proto icmp counter accept comment "default-allow-internal p65534"
        tcp dport 3389 counter accept comment "default-allow-rdp p65534"
        tcp dport 22 counter accept comment "default-allow-ssh p65534"
        counter drop comment "implied deny all ingress p65535"
    }

    # Traffic from instances. allow: go on (to the destination''s ingress rules), deny: drop.
    chain egress {
        counter return comment "implied allow all egress p65535"
    }

    chain forward {
        type filter hook forward priority filter; policy drop;
        ct state established,related accept
        ct state invalid drop
        oifname "eth0" ip saddr @no_egress counter drop comment "no external address and no Cloud NAT"
        ip saddr @vm_addrs jump egress
        ip daddr @vm_addrs jump ingress
        ip saddr @vm_addrs accept
    }

    # The router itself: DHCP and DNS for the guests, the load balancer''s frontends.
    chain input {
        type filter hook input priority filter; policy drop;
        iifname "lo" accept
        ct state established,related accept
        ct state invalid drop
        meta l4proto icmp accept
        iifname != "eth0" udp dport { 53, 67 } accept
        iifname != "eth0" tcp dport 53 accept
    }
}

table ip gstack_nat {
    chain prerouting {
        type nat hook prerouting priority dstnat; policy accept;
    }

    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
    }
}
', '13d2169d522d8f4a63b276f49456931d0d5d2f6a1b1449f3d9077e37bd6c067f', 1, 1796282445.1874118),
	(3, 2188807098263859761, 1, '/etc/haproxy/haproxy.cfg', '# gstack virtual router r-3e98afe5318fdf8c-us-central1: load balancers of demo-project/global/networks/default in us-central1.
# Rendered from the gstack database; edits are overwritten.
global
    log /dev/log local0
    maxconn 65536
    crt-base /etc/haproxy/certs

defaults
    mode tcp
    log global
    option tcplog
    timeout connect 5s
    timeout client 1m
    timeout server 1m

# The router''s own view of its backends, for the core''s checks (and a listener when there is no rule).
listen stats
    bind 127.0.0.1:8404
    mode http
    stats enable
    stats uri /
    stats refresh 10s
', 'de26512b51c9679da20d2afbda7ae0a9f303f9a855c6c27faef1f288df1a4a7d', 1, 1796282445.1874118),
	(4, 2188807098263859761, 1, '/etc/sysctl.d/90-gstack.conf', '# gstack virtual router r-3e98afe5318fdf8c-us-central1 (x86_64 system VM template).
net.ipv4.ip_forward = 1
# HAProxy binds the forwarding rules'' addresses, which the kernel routes here.
net.ipv4.ip_nonlocal_bind = 1
net.netfilter.nf_conntrack_max = 4194304
', 'f5b1a1effc47b3bcb44cdeadcc5e33c2b940ea0a987558d8baf5422aa1a1b7a9', 1, 1796282445.1874118);

INSERT INTO public.storage_pools VALUES
	(1, 1, NULL, 'us-central1-a-primary', 20480, 2, 'Up'),
	(2, 2, NULL, 'us-central1-b-primary', 20480, 2, 'Up'),
	(3, 3, NULL, 'us-central1-c-primary', 20480, 2, 'Up'),
	(4, 4, NULL, 'europe-west1-b-primary', 20480, 2, 'Up');

INSERT INTO public.system_settings VALUES
	('watchdog.heartbeat', '1796282439.885532');

INSERT INTO public.system_vms VALUES
	(1, 2188807098263859761, 'r-3e98afe5318fdf8c-us-central1', 'router', 'router:4510548425725435788:us-central1', 1, 'us-central1', 4510548425725435788, 'https://www.googleapis.com/compute/v1/projects/demo-project/global/networks/default', 'demo-project', 'x86_64', 'Running', NULL, 4194304, 1, '{"/etc/dnsmasq.d/gstack.conf":"8df6d7216fac50146400f842950923f4a4675813810e795929ea0c83d9e3cf72","/etc/haproxy/haproxy.cfg":"de26512b51c9679da20d2afbda7ae0a9f303f9a855c6c27faef1f288df1a4a7d","/etc/nftables.conf":"13d2169d522d8f4a63b276f49456931d0d5d2f6a1b1449f3d9077e37bd6c067f","/etc/sysctl.d/90-gstack.conf":"f5b1a1effc47b3bcb44cdeadcc5e33c2b940ea0a987558d8baf5422aa1a1b7a9"}', 1, '{"/etc/dnsmasq.d/gstack.conf":"8df6d7216fac50146400f842950923f4a4675813810e795929ea0c83d9e3cf72","/etc/haproxy/haproxy.cfg":"de26512b51c9679da20d2afbda7ae0a9f303f9a855c6c27faef1f288df1a4a7d","/etc/nftables.conf":"13d2169d522d8f4a63b276f49456931d0d5d2f6a1b1449f3d9077e37bd6c067f","/etc/sysctl.d/90-gstack.conf":"f5b1a1effc47b3bcb44cdeadcc5e33c2b940ea0a987558d8baf5422aa1a1b7a9"}', 1796282445.2092962, NULL, 1796282444.9036713, 1796282444.9566865);

INSERT INTO public.zones VALUES
	(1, 2000, 'us-central1-a', 1, 'UP', 'x86_64'),
	(2, 2001, 'us-central1-b', 1, 'UP', 'x86_64'),
	(3, 2002, 'us-central1-c', 1, 'UP', 'x86_64'),
	(4, 2101, 'europe-west1-b', 2, 'UP', 'x86_64');

SELECT pg_catalog.setval('public.access_tokens_id_seq', 1, true);

SELECT pg_catalog.setval('public.authorization_codes_id_seq', 1, false);

SELECT pg_catalog.setval('public.browser_sessions_id_seq', 1, false);

SELECT pg_catalog.setval('public.clusters_id_seq', 4, true);

SELECT pg_catalog.setval('public.console_ticket_uses_id_seq', 1, false);

SELECT pg_catalog.setval('public.device_authorizations_id_seq', 1, false);

SELECT pg_catalog.setval('public.hosts_id_seq', 16, true);

SELECT pg_catalog.setval('public.instance_group_members_id_seq', 1, false);

SELECT pg_catalog.setval('public.ip_allocations_id_seq', 3, true);

SELECT pg_catalog.setval('public.memberships_id_seq', 2, true);

SELECT pg_catalog.setval('public.oauth_clients_id_seq', 1, false);

SELECT pg_catalog.setval('public.operations_pk_seq', 7, true);

SELECT pg_catalog.setval('public.pods_id_seq', 4, true);

SELECT pg_catalog.setval('public.principals_id_seq', 2, true);

SELECT pg_catalog.setval('public.projects_id_seq', 20, true);

SELECT pg_catalog.setval('public.refresh_tokens_id_seq', 1, false);

SELECT pg_catalog.setval('public.regions_id_seq', 2, true);

SELECT pg_catalog.setval('public.resources_pk_seq', 23, true);

SELECT pg_catalog.setval('public.secondary_objects_id_seq', 1, false);

SELECT pg_catalog.setval('public.service_account_keys_id_seq', 1, true);

SELECT pg_catalog.setval('public.signing_keys_id_seq', 1, true);

SELECT pg_catalog.setval('public.sim_cpu_loads_vm_uid_seq', 1, false);

SELECT pg_catalog.setval('public.sim_domains_id_seq', 3, true);

SELECT pg_catalog.setval('public.sim_serving_instance_uid_seq', 1, false);

SELECT pg_catalog.setval('public.sim_vm_files_id_seq', 4, true);

SELECT pg_catalog.setval('public.storage_pools_id_seq', 4, true);

SELECT pg_catalog.setval('public.system_vms_id_seq', 1, true);

SELECT pg_catalog.setval('public.used_assertions_id_seq', 1, false);

SELECT pg_catalog.setval('public.zones_id_seq', 4, true);

ALTER TABLE ONLY public.access_tokens
    ADD CONSTRAINT access_tokens_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.access_tokens
    ADD CONSTRAINT access_tokens_token_hash_key UNIQUE (token_hash);

ALTER TABLE ONLY public.authorization_codes
    ADD CONSTRAINT authorization_codes_code_hash_key UNIQUE (code_hash);

ALTER TABLE ONLY public.authorization_codes
    ADD CONSTRAINT authorization_codes_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.browser_sessions
    ADD CONSTRAINT browser_sessions_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.browser_sessions
    ADD CONSTRAINT browser_sessions_token_hash_key UNIQUE (token_hash);

ALTER TABLE ONLY public.clusters
    ADD CONSTRAINT clusters_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.console_ticket_uses
    ADD CONSTRAINT console_ticket_uses_digest_key UNIQUE (digest);

ALTER TABLE ONLY public.console_ticket_uses
    ADD CONSTRAINT console_ticket_uses_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.device_authorizations
    ADD CONSTRAINT device_authorizations_device_code_hash_key UNIQUE (device_code_hash);

ALTER TABLE ONLY public.device_authorizations
    ADD CONSTRAINT device_authorizations_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.device_authorizations
    ADD CONSTRAINT device_authorizations_user_code_hash_key UNIQUE (user_code_hash);

ALTER TABLE ONLY public.hosts
    ADD CONSTRAINT hosts_name_key UNIQUE (name);

ALTER TABLE ONLY public.hosts
    ADD CONSTRAINT hosts_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.instance_group_members
    ADD CONSTRAINT instance_group_members_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.ip_allocations
    ADD CONSTRAINT ip_allocations_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.memberships
    ADD CONSTRAINT memberships_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.oauth_clients
    ADD CONSTRAINT oauth_clients_client_id_key UNIQUE (client_id);

ALTER TABLE ONLY public.oauth_clients
    ADD CONSTRAINT oauth_clients_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.operations
    ADD CONSTRAINT operations_name_key UNIQUE (name);

ALTER TABLE ONLY public.operations
    ADD CONSTRAINT operations_pkey PRIMARY KEY (pk);

ALTER TABLE ONLY public.operations
    ADD CONSTRAINT operations_uid_key UNIQUE (uid);

ALTER TABLE ONLY public.pods
    ADD CONSTRAINT pods_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.principals
    ADD CONSTRAINT principals_email_key UNIQUE (email);

ALTER TABLE ONLY public.principals
    ADD CONSTRAINT principals_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.projects
    ADD CONSTRAINT projects_name_key UNIQUE (name);

ALTER TABLE ONLY public.projects
    ADD CONSTRAINT projects_number_key UNIQUE (number);

ALTER TABLE ONLY public.projects
    ADD CONSTRAINT projects_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.refresh_tokens
    ADD CONSTRAINT refresh_tokens_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.refresh_tokens
    ADD CONSTRAINT refresh_tokens_token_hash_key UNIQUE (token_hash);

ALTER TABLE ONLY public.regions
    ADD CONSTRAINT regions_name_key UNIQUE (name);

ALTER TABLE ONLY public.regions
    ADD CONSTRAINT regions_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.regions
    ADD CONSTRAINT regions_uid_key UNIQUE (uid);

ALTER TABLE ONLY public.resource_usage
    ADD CONSTRAINT resource_usage_pkey PRIMARY KEY (project, region, collection, subtype);

ALTER TABLE ONLY public.resources
    ADD CONSTRAINT resources_pkey PRIMARY KEY (pk);

ALTER TABLE ONLY public.resources
    ADD CONSTRAINT resources_uid_key UNIQUE (uid);

ALTER TABLE ONLY public.secondary_objects
    ADD CONSTRAINT secondary_objects_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.service_account_keys
    ADD CONSTRAINT service_account_keys_key_id_key UNIQUE (key_id);

ALTER TABLE ONLY public.service_account_keys
    ADD CONSTRAINT service_account_keys_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.signing_keys
    ADD CONSTRAINT signing_keys_kid_key UNIQUE (kid);

ALTER TABLE ONLY public.signing_keys
    ADD CONSTRAINT signing_keys_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.sim_cpu_loads
    ADD CONSTRAINT sim_cpu_loads_pkey PRIMARY KEY (vm_uid);

ALTER TABLE ONLY public.sim_domains
    ADD CONSTRAINT sim_domains_instance_uid_key UNIQUE (instance_uid);

ALTER TABLE ONLY public.sim_domains
    ADD CONSTRAINT sim_domains_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.sim_serving
    ADD CONSTRAINT sim_serving_pkey PRIMARY KEY (instance_uid);

ALTER TABLE ONLY public.sim_vm_files
    ADD CONSTRAINT sim_vm_files_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.storage_pools
    ADD CONSTRAINT storage_pools_name_key UNIQUE (name);

ALTER TABLE ONLY public.storage_pools
    ADD CONSTRAINT storage_pools_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.system_settings
    ADD CONSTRAINT system_settings_pkey PRIMARY KEY (key);

ALTER TABLE ONLY public.system_vms
    ADD CONSTRAINT system_vms_name_key UNIQUE (name);

ALTER TABLE ONLY public.system_vms
    ADD CONSTRAINT system_vms_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.system_vms
    ADD CONSTRAINT system_vms_role_key_key UNIQUE (role_key);

ALTER TABLE ONLY public.system_vms
    ADD CONSTRAINT system_vms_uid_key UNIQUE (uid);

ALTER TABLE ONLY public.instance_group_members
    ADD CONSTRAINT uq_instance_group_member UNIQUE (group_uid, instance_uid);

ALTER TABLE ONLY public.ip_allocations
    ADD CONSTRAINT uq_ip_allocation UNIQUE (pool, address);

ALTER TABLE ONLY public.memberships
    ADD CONSTRAINT uq_membership UNIQUE (project_id, principal_id);

ALTER TABLE ONLY public.operations
    ADD CONSTRAINT uq_operation_request_id UNIQUE (project, client_operation_id);

ALTER TABLE ONLY public.resources
    ADD CONSTRAINT uq_resource_name UNIQUE (project, collection, scope, name);

ALTER TABLE ONLY public.secondary_objects
    ADD CONSTRAINT uq_secondary_object UNIQUE (zone_id, owner_uid);

ALTER TABLE ONLY public.sim_vm_files
    ADD CONSTRAINT uq_sim_vm_file UNIQUE (vm_uid, path);

ALTER TABLE ONLY public.used_assertions
    ADD CONSTRAINT used_assertions_digest_key UNIQUE (digest);

ALTER TABLE ONLY public.used_assertions
    ADD CONSTRAINT used_assertions_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.zones
    ADD CONSTRAINT zones_name_key UNIQUE (name);

ALTER TABLE ONLY public.zones
    ADD CONSTRAINT zones_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.zones
    ADD CONSTRAINT zones_uid_key UNIQUE (uid);

CREATE INDEX ix_access_tokens_grant ON public.access_tokens USING btree ("grant");

CREATE INDEX ix_access_tokens_principal_id ON public.access_tokens USING btree (principal_id);

CREATE INDEX ix_access_tokens_refresh_token_id ON public.access_tokens USING btree (refresh_token_id);

CREATE INDEX ix_authorization_codes_expires ON public.authorization_codes USING btree (expires);

CREATE INDEX ix_authorization_codes_principal_id ON public.authorization_codes USING btree (principal_id);

CREATE INDEX ix_browser_sessions_expires ON public.browser_sessions USING btree (expires);

CREATE INDEX ix_browser_sessions_principal_id ON public.browser_sessions USING btree (principal_id);

CREATE INDEX ix_clusters_zone_id ON public.clusters USING btree (zone_id);

CREATE INDEX ix_console_ticket_uses_expires ON public.console_ticket_uses USING btree (expires);

CREATE INDEX ix_device_authorizations_expires ON public.device_authorizations USING btree (expires);

CREATE INDEX ix_hosts_cluster_id ON public.hosts USING btree (cluster_id);

CREATE INDEX ix_hosts_zone_id ON public.hosts USING btree (zone_id);

CREATE INDEX ix_instance_group_members_group_uid ON public.instance_group_members USING btree (group_uid);

CREATE INDEX ix_instance_group_members_instance_uid ON public.instance_group_members USING btree (instance_uid);

CREATE INDEX ix_ip_allocations_owner_uid ON public.ip_allocations USING btree (owner_uid);

CREATE INDEX ix_memberships_principal_id ON public.memberships USING btree (principal_id);

CREATE INDEX ix_memberships_project_id ON public.memberships USING btree (project_id);

CREATE INDEX ix_operation_claim ON public.operations USING btree (status, lease_expiry);

CREATE INDEX ix_operation_scope ON public.operations USING btree (project, scope, name);

CREATE INDEX ix_operation_target ON public.operations USING btree (target_id, status);

CREATE INDEX ix_refresh_tokens_grant ON public.refresh_tokens USING btree ("grant");

CREATE INDEX ix_refresh_tokens_principal_id ON public.refresh_tokens USING btree (principal_id);

CREATE INDEX ix_resource_host_usage ON public.resources USING btree (host_id, vcpus, memory_mb);

CREATE INDEX ix_resource_pool_usage ON public.resources USING btree (pool_id, size_gb);

CREATE INDEX ix_secondary_objects_owner_uid ON public.secondary_objects USING btree (owner_uid);

CREATE INDEX ix_secondary_objects_zone_id ON public.secondary_objects USING btree (zone_id);

CREATE INDEX ix_service_account_keys_principal_id ON public.service_account_keys USING btree (principal_id);

CREATE INDEX ix_sim_domains_host_id ON public.sim_domains USING btree (host_id);

CREATE INDEX ix_sim_vm_files_vm_uid ON public.sim_vm_files USING btree (vm_uid);

CREATE INDEX ix_storage_pools_zone_id ON public.storage_pools USING btree (zone_id);

CREATE INDEX ix_system_vm_network ON public.system_vms USING btree (network_uid);

CREATE INDEX ix_system_vms_zone_id ON public.system_vms USING btree (zone_id);

CREATE INDEX ix_used_assertions_expires ON public.used_assertions USING btree (expires);

CREATE TRIGGER resource_usage AFTER INSERT OR DELETE OR UPDATE ON public.resources FOR EACH ROW EXECUTE FUNCTION public.gstack_resource_usage();

ALTER TABLE ONLY public.access_tokens
    ADD CONSTRAINT access_tokens_principal_id_fkey FOREIGN KEY (principal_id) REFERENCES public.principals(id);

ALTER TABLE ONLY public.access_tokens
    ADD CONSTRAINT access_tokens_refresh_token_id_fkey FOREIGN KEY (refresh_token_id) REFERENCES public.refresh_tokens(id);

ALTER TABLE ONLY public.authorization_codes
    ADD CONSTRAINT authorization_codes_principal_id_fkey FOREIGN KEY (principal_id) REFERENCES public.principals(id);

ALTER TABLE ONLY public.browser_sessions
    ADD CONSTRAINT browser_sessions_principal_id_fkey FOREIGN KEY (principal_id) REFERENCES public.principals(id);

ALTER TABLE ONLY public.clusters
    ADD CONSTRAINT clusters_pod_id_fkey FOREIGN KEY (pod_id) REFERENCES public.pods(id);

ALTER TABLE ONLY public.clusters
    ADD CONSTRAINT clusters_zone_id_fkey FOREIGN KEY (zone_id) REFERENCES public.zones(id);

ALTER TABLE ONLY public.device_authorizations
    ADD CONSTRAINT device_authorizations_principal_id_fkey FOREIGN KEY (principal_id) REFERENCES public.principals(id);

ALTER TABLE ONLY public.hosts
    ADD CONSTRAINT hosts_cluster_id_fkey FOREIGN KEY (cluster_id) REFERENCES public.clusters(id);

ALTER TABLE ONLY public.hosts
    ADD CONSTRAINT hosts_zone_id_fkey FOREIGN KEY (zone_id) REFERENCES public.zones(id);

ALTER TABLE ONLY public.memberships
    ADD CONSTRAINT memberships_principal_id_fkey FOREIGN KEY (principal_id) REFERENCES public.principals(id);

ALTER TABLE ONLY public.memberships
    ADD CONSTRAINT memberships_project_id_fkey FOREIGN KEY (project_id) REFERENCES public.projects(id);

ALTER TABLE ONLY public.pods
    ADD CONSTRAINT pods_zone_id_fkey FOREIGN KEY (zone_id) REFERENCES public.zones(id);

ALTER TABLE ONLY public.principals
    ADD CONSTRAINT principals_project_id_fkey FOREIGN KEY (project_id) REFERENCES public.projects(id);

ALTER TABLE ONLY public.refresh_tokens
    ADD CONSTRAINT refresh_tokens_principal_id_fkey FOREIGN KEY (principal_id) REFERENCES public.principals(id);

ALTER TABLE ONLY public.resources
    ADD CONSTRAINT resources_host_id_fkey FOREIGN KEY (host_id) REFERENCES public.hosts(id);

ALTER TABLE ONLY public.resources
    ADD CONSTRAINT resources_last_host_id_fkey FOREIGN KEY (last_host_id) REFERENCES public.hosts(id);

ALTER TABLE ONLY public.resources
    ADD CONSTRAINT resources_pool_id_fkey FOREIGN KEY (pool_id) REFERENCES public.storage_pools(id);

ALTER TABLE ONLY public.secondary_objects
    ADD CONSTRAINT secondary_objects_zone_id_fkey FOREIGN KEY (zone_id) REFERENCES public.zones(id);

ALTER TABLE ONLY public.service_account_keys
    ADD CONSTRAINT service_account_keys_principal_id_fkey FOREIGN KEY (principal_id) REFERENCES public.principals(id);

ALTER TABLE ONLY public.sim_domains
    ADD CONSTRAINT sim_domains_host_id_fkey FOREIGN KEY (host_id) REFERENCES public.hosts(id);

ALTER TABLE ONLY public.storage_pools
    ADD CONSTRAINT storage_pools_cluster_id_fkey FOREIGN KEY (cluster_id) REFERENCES public.clusters(id);

ALTER TABLE ONLY public.storage_pools
    ADD CONSTRAINT storage_pools_zone_id_fkey FOREIGN KEY (zone_id) REFERENCES public.zones(id);

ALTER TABLE ONLY public.system_vms
    ADD CONSTRAINT system_vms_zone_id_fkey FOREIGN KEY (zone_id) REFERENCES public.zones(id);

ALTER TABLE ONLY public.zones
    ADD CONSTRAINT zones_region_id_fkey FOREIGN KEY (region_id) REFERENCES public.regions(id);

