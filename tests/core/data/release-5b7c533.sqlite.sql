PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE projects (
	id INTEGER NOT NULL, 
	name VARCHAR(100) NOT NULL, 
	number BIGINT NOT NULL, 
	created FLOAT NOT NULL, 
	public BOOLEAN NOT NULL, 
	common_metadata TEXT NOT NULL, 
	metadata_fingerprint VARCHAR(16) NOT NULL, 
	quota_limits TEXT NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (name), 
	UNIQUE (number)
);
INSERT INTO projects VALUES(1,'almalinux-cloud',389912759933,1796282422.6464214324,1,'[]','','{}');
INSERT INTO projects VALUES(2,'centos-cloud',429674431350,1796282422.6474261283,1,'[]','','{}');
INSERT INTO projects VALUES(3,'cos-cloud',978743927753,1796282422.6478815079,1,'[]','','{}');
INSERT INTO projects VALUES(4,'debian-cloud',870925786936,1796282422.6482961178,1,'[]','','{}');
INSERT INTO projects VALUES(5,'fedora-coreos-cloud',445553249738,1796282422.6486809254,1,'[]','','{}');
INSERT INTO projects VALUES(6,'opensuse-cloud',837871186737,1796282422.6533119678,1,'[]','','{}');
INSERT INTO projects VALUES(7,'oracle-linux-cloud',450927875082,1796282422.6537878513,1,'[]','','{}');
INSERT INTO projects VALUES(8,'rhel-cloud',557192374288,1796282422.6541996002,1,'[]','','{}');
INSERT INTO projects VALUES(9,'rhel-sap-cloud',765175038695,1796282422.65457654,1,'[]','','{}');
INSERT INTO projects VALUES(10,'rocky-linux-accelerator-cloud',474847967965,1796282422.6549572944,1,'[]','','{}');
INSERT INTO projects VALUES(11,'rocky-linux-cloud',186255324569,1796282422.6553273201,1,'[]','','{}');
INSERT INTO projects VALUES(12,'suse-cloud',164420413489,1796282422.6556904315,1,'[]','','{}');
INSERT INTO projects VALUES(13,'suse-sap-cloud',833835191563,1796282422.6561741828,1,'[]','','{}');
INSERT INTO projects VALUES(14,'ubuntu-os-accelerator-images',909024454461,1796282422.6696403026,1,'[]','','{}');
INSERT INTO projects VALUES(15,'ubuntu-os-cloud',557398438381,1796282422.6701309681,1,'[]','','{}');
INSERT INTO projects VALUES(16,'ubuntu-os-pro-cloud',440149923986,1796282422.6705455779,1,'[]','','{}');
INSERT INTO projects VALUES(17,'windows-cloud',378407285901,1796282422.6733837127,1,'[]','','{}');
INSERT INTO projects VALUES(18,'windows-sql-cloud',942694393685,1796282422.6738929749,1,'[]','','{}');
INSERT INTO projects VALUES(19,'demo-project',922210327643,1796282422.6979253292,0,'[]','','{}');
INSERT INTO projects VALUES(20,'gstack-system',708623746770,1796282431.14076972,0,'[]','','{}');
CREATE TABLE oauth_clients (
	id INTEGER NOT NULL, 
	client_id VARCHAR(255) NOT NULL, 
	secret_hash VARCHAR(64), 
	name VARCHAR(255) NOT NULL, 
	kind VARCHAR(16) NOT NULL, 
	redirect_uris TEXT NOT NULL, 
	created FLOAT NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (client_id)
);
CREATE TABLE used_assertions (
	id INTEGER NOT NULL, 
	digest VARCHAR(64) NOT NULL, 
	expires FLOAT NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (digest)
);
CREATE TABLE signing_keys (
	id INTEGER NOT NULL, 
	kid VARCHAR(64) NOT NULL, 
	private_pem TEXT NOT NULL, 
	created FLOAT NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (kid)
);
INSERT INTO signing_keys VALUES(1,'28361f95c5f37ca83c67414bc9f58974e3434fc7',replace('-----BEGIN PRIVATE KEY-----\nMIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQDMxp6C4ZALhk/p\nR/w7CL1YkO34KqlXntUIW8cBkMfS6n2BNbUxqG9xic/VsqCqMQxBs5W2zYRTs1Zb\noc/8DFYem9Hvw8IvWXNK3lAf2KvW9iivj7RyhTzcrel8iZSMc9kATgrOdOg+7ULB\nhmLwQAJ/fCF2UssJdaLWruUtEug/X/yLwLstPTMrB+lpkMNkeME7Tl4YAHnnMLt6\nboh0r/+ZddFQFQn69QJsCEIk/pCR1C4hhbClvFzLWhGmQM6c6VZ/Vds6udjIkWJB\naMKZEpB6MUK1djJc2suZVlucpuyCvZ9rU8y2Oy4FZdZEfvGMEc/E/s+xVZDz2jbB\nQO0aXGbXAgMBAAECggEADRDBLV2h+LJFp/9BTyz0E9IPdO2X53DJa+KbNHTd4w22\nG0fnezchgS+HVL20dZdyjkCclVDQmByRroAJCq5o0kQj5XXqjmXZLtY3a4jCEhGb\nr/Pt0f7BTt1Dz//hPALqPhQ8qUaZSOaPg1SFPIoA/sxXQDrxHHXmgWcgVTtnGR/z\n//RNTuZl9L/1UPQwIJ+H4fyYGhQv6LQudykxtOUmjPinPRADH1yopIFuv+gIRAs6\nu9AaP5FfOhsBBrSes5IemGodA6qq9N5Hix7rPvQhTUe217+UD/wAaWfiue7qEexR\nVfxZ3Nbc4DgUCh5Lggv5bIy/OT87PfHdoF/OONgnAQKBgQDlfOJZkyQdx8NG0MPR\n15jpcpwEbfbJGbTkq4z3Cem21yAZ2QCqdATELYIxQt/E7yP6kZLqV4rfrnVOmYCS\ntgsu0CjEwQIjaFj7pr1GckuwbVztxh0QOLBcPzzr5q40QR2pjU/djZdXokmTUYx3\nU1KDL/GJq6LBSm4W4hxGTmBd1wKBgQDkbuCCCYpC5bT5O0DFTF4FbIc+l+3V2UNx\ndvTccHJCoSPWpQLp3bQXmmH9k9x7Pwy4t7ja1cMeMIBJ2RIQHcuAsvWIfACV93xN\nLCqXEP1JNFjmjcuw/8PszTWPT/9ki46uENlNZgBUruf2SXbNGGxQf7xxlQWlMYsB\ntIGUqnkfAQKBgQCv7TIU21Enp1mTcz17I92ssVjbqHU1K4jaeI0DYU0TBw4r4oi5\nI2H4Bq81FoA3F+EsGOdY0S28VqDFVbYUQoyGIbvvQcti237DxMp7M+nEYcKI4YSs\nR9kjjrMkYV6Q3o5fyd49CWvJGbdvwWd+npi1y05ObQ7DQUzuK/7jAvirVwKBgFiR\nbNa+YC8j5RElGi3lOCceNynbuklJ3c5mcvXtWz/ePokAnaqTXToxj4DEDZ5zibks\n8q1WaDqST4tScKBzDO4vdOegPJHozPcXAsRjv/DcLQPnQmy0HgD4Z6XTPJB9U6rF\nuZs6yzIKRsHFJhzLNWPYwvW+89ti5CSbGgrMNf4BAoGBAMUGLt/+fahJANOvWL+o\nFvvUkqEvVRQqVGvkn3XLbuyMA+qgFw6C7gnlrT5TU4c/noENoT4Fi+wwCndEpn8h\nr8XM2ILCcjvF8+arbW0H7+ePm8F9dn/qYQ/nxd8IpJcJhh3LhykUEFb3/Gn6kfAc\nvEbW7nLB2v8kYKiiTyiTWyL9\n-----END PRIVATE KEY-----\n','\n',char(10)),1796282427.3208465576);
CREATE TABLE instance_group_members (
	id INTEGER NOT NULL, 
	group_uid BIGINT NOT NULL, 
	instance_uid BIGINT NOT NULL, 
	added FLOAT NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_instance_group_member UNIQUE (group_uid, instance_uid)
);
CREATE TABLE operations (
	pk INTEGER NOT NULL, 
	uid BIGINT NOT NULL, 
	name VARCHAR(80) NOT NULL, 
	project VARCHAR(100) NOT NULL, 
	scope VARCHAR(80) NOT NULL, 
	operation_type VARCHAR(64) NOT NULL, 
	target_link VARCHAR(400) NOT NULL, 
	target_id BIGINT, 
	status VARCHAR(16) NOT NULL, 
	progress INTEGER NOT NULL, 
	status_message VARCHAR(400), 
	user VARCHAR(255) NOT NULL, 
	client_operation_id VARCHAR(64), 
	insert_time FLOAT NOT NULL, 
	start_time FLOAT, 
	end_time FLOAT, 
	error TEXT, 
	http_error_status INTEGER, 
	http_error_message VARCHAR(64), 
	warnings TEXT, 
	job VARCHAR(64) NOT NULL, 
	params TEXT NOT NULL, 
	lease_owner VARCHAR(64), 
	lease_expiry FLOAT, 
	attempts INTEGER NOT NULL, 
	PRIMARY KEY (pk), 
	CONSTRAINT uq_operation_request_id UNIQUE (project, client_operation_id), 
	UNIQUE (uid), 
	UNIQUE (name)
);
INSERT INTO operations VALUES(1,6158061020371896974,'operation-1796282430933-18fdf6f308d3e-ed102459-0078bb97','demo-project','zones/us-central1-a','insert','projects/demo-project/zones/us-central1-a/disks/data-1',8798469486605758183,'DONE',100,NULL,'gstack-admin@demo-project.iam.gserviceaccount.com',NULL,1796282430.9338545798,1796282430.9338545798,1796282430.9736175536,NULL,NULL,NULL,NULL,'disks.insert','{"uids":[8798469486605758183],"zone_id":1}',NULL,NULL,1);
INSERT INTO operations VALUES(2,4398718890949871626,'operation-1796282431112-170ce5d02b943-b2d02c41-537f63a8','demo-project','zones/us-central1-a','insert','projects/demo-project/zones/us-central1-a/instances/vm-1',290438752897610618,'DONE',100,NULL,'gstack-admin@demo-project.iam.gserviceaccount.com',NULL,1796282431.1125850677,1796282431.1125850677,1796282431.1602334976,NULL,NULL,NULL,NULL,'instances.run','{"uid":290438752897610618,"created_disks":[3511086417388865122],"zone_id":1,"delete_on_fail":true,"warnings":[]}',NULL,NULL,1);
INSERT INTO operations VALUES(3,362503533863427257,'operation-1796282431141-a164983ddbb5b-c288aa7a-237b486a','gstack-system','global','systemvms.syncNetwork','projects/demo-project/global/networks/default',98645252555990910,'DONE',100,NULL,'system',NULL,1796282431.1417996884,1796282431.1417996884,1796282431.3382322788,NULL,NULL,NULL,NULL,'systemvms.syncNetwork','{"project":"demo-project","network":"https://www.googleapis.com/compute/v1/projects/demo-project/global/networks/default","network_uid":98645252555990910,"started_at":1796282431.1921594,"render_seconds":0.1051}',NULL,NULL,1);
INSERT INTO operations VALUES(4,7338566664754042283,'operation-1796282431329-c674fa1f7d287-8238955f-68bde98a','demo-project','zones/us-central1-a','insert','projects/demo-project/zones/us-central1-a/instances/vm-2',7205224740474673546,'DONE',100,NULL,'gstack-admin@demo-project.iam.gserviceaccount.com',NULL,1796282431.3292529583,1796282431.3292529583,1796282431.3480377196,NULL,NULL,NULL,NULL,'instances.run','{"uid":7205224740474673546,"created_disks":[3440416699116885800],"zone_id":1,"delete_on_fail":true,"warnings":[]}',NULL,NULL,1);
INSERT INTO operations VALUES(5,5313587096035463572,'operation-1796282431342-79c1d6ff7990a-16a0a42f-2a0940c5','gstack-system','global','systemvms.syncNetwork','projects/demo-project/global/networks/default',98645252555990910,'PENDING',0,NULL,'system',NULL,1796282431.3422598838,1796282431.3422598838,NULL,NULL,NULL,NULL,NULL,'systemvms.syncNetwork','{"project":"demo-project","network":"https://www.googleapis.com/compute/v1/projects/demo-project/global/networks/default","network_uid":98645252555990910}',NULL,1796282432.2431595325,0);
INSERT INTO operations VALUES(6,7235040007792628043,'operation-1796282431463-26faedf6d872c-e66f171c-03ca2c16','demo-project','zones/us-central1-a','stop','projects/demo-project/zones/us-central1-a/instances/vm-2',7205224740474673546,'DONE',100,NULL,'gstack-admin@demo-project.iam.gserviceaccount.com',NULL,1796282431.4630286694,1796282431.4630286694,1796282431.4698381424,NULL,NULL,NULL,NULL,'instances.stop','{"uid":7205224740474673546}',NULL,NULL,1);
INSERT INTO operations VALUES(7,5082664801005304119,'operation-1796282431476-c2ed7302d36d6-a4f6699d-0582da9b','demo-project','global','insert','projects/demo-project/global/addresses/addr-1',3146973647636521532,'DONE',100,NULL,'gstack-admin@demo-project.iam.gserviceaccount.com',NULL,1796282431.4763228892,1796282431.4763228892,1796282431.4763228892,NULL,NULL,NULL,NULL,'','{}',NULL,NULL,0);
CREATE TABLE resource_usage (
	project VARCHAR(100) NOT NULL, 
	region VARCHAR(63) NOT NULL, 
	collection VARCHAR(40) NOT NULL, 
	subtype VARCHAR(64) NOT NULL, 
	count INTEGER NOT NULL, 
	cpus INTEGER NOT NULL, 
	size_gb BIGINT NOT NULL, 
	PRIMARY KEY (project, region, collection, subtype)
);
INSERT INTO resource_usage VALUES('demo-project','us-central1','disks','pd-standard',3,0,40);
INSERT INTO resource_usage VALUES('demo-project','us-central1','instances','e2-small',1,2,0);
INSERT INTO resource_usage VALUES('demo-project','us-central1','instances','e2-micro',1,0,0);
CREATE TABLE ip_allocations (
	id INTEGER NOT NULL, 
	pool VARCHAR(120) NOT NULL, 
	address BIGINT NOT NULL, 
	owner_uid BIGINT NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_ip_allocation UNIQUE (pool, address)
);
INSERT INTO ip_allocations VALUES(1,'subnet:946619664477460008',176160770,290438752897610618);
INSERT INTO ip_allocations VALUES(2,'subnet:946619664477460008',176160771,7205224740474673546);
INSERT INTO ip_allocations VALUES(3,'external:global',3323199234,3146973647636521532);
CREATE TABLE sim_serving (
	instance_uid BIGINT NOT NULL, 
	serving BOOLEAN NOT NULL, 
	PRIMARY KEY (instance_uid)
);
CREATE TABLE sim_cpu_loads (
	vm_uid BIGINT NOT NULL, 
	busy FLOAT NOT NULL, 
	since FLOAT NOT NULL, 
	used FLOAT NOT NULL, 
	PRIMARY KEY (vm_uid)
);
CREATE TABLE system_settings (
	"key" VARCHAR(64) NOT NULL, 
	value TEXT NOT NULL, 
	PRIMARY KEY ("key")
);
INSERT INTO system_settings VALUES('watchdog.heartbeat','1796282426.7186542');
CREATE TABLE console_ticket_uses (
	id INTEGER NOT NULL, 
	digest VARCHAR(64) NOT NULL, 
	expires FLOAT NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (digest)
);
CREATE TABLE sim_vm_files (
	id INTEGER NOT NULL, 
	vm_uid BIGINT NOT NULL, 
	host_id INTEGER NOT NULL, 
	path VARCHAR(255) NOT NULL, 
	content TEXT NOT NULL, 
	checksum VARCHAR(64) NOT NULL, 
	writes INTEGER NOT NULL, 
	written FLOAT NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_sim_vm_file UNIQUE (vm_uid, path)
);
INSERT INTO sim_vm_files VALUES(1,2932659893550195810,1,'/etc/dnsmasq.d/gstack.conf',replace('# gstack virtual router r-15e7555a560e77e-us-central1: DHCP and DNS of demo-project/global/networks/default in us-central1.\n# Rendered from the gstack database; edits are overwritten.\ndomain-needed\nbogus-priv\nno-resolv\nno-hosts\nbind-interfaces\nexcept-interface=eth0\ninterface=eth1\nserver=8.8.8.8\nserver=8.8.4.4\n# Names under .internal are answered here or not at all.\nlocal=/internal/\ndhcp-authoritative\ndhcp-lease-max=2\ndhcp-range=set:subnet1,10.128.0.0,static,255.255.240.0,infinite\ndhcp-option=tag:subnet1,option:router,10.128.0.1\ndhcp-option=tag:subnet1,option:dns-server,10.128.0.1\ndhcp-option=tag:subnet1,option:mtu,1460\ndhcp-option=tag:dom0,option:domain-name,us-central1-a.c.demo-project.internal\ndhcp-option=tag:dom0,option:domain-search,us-central1-a.c.demo-project.internal,c.demo-project.internal,google.internal\ndhcp-host=42:01:0a:80:00:02,set:dom0,10.128.0.2,vm-1,infinite\nhost-record=vm-1.us-central1-a.c.demo-project.internal,10.128.0.2\n','\n',char(10)),'d794fb97eed1b0ab9c996fbc0f6927a0e800289546d732167e4736fe5f0e551f',1,1796282431.3042564392);
INSERT INTO sim_vm_files VALUES(2,2932659893550195810,1,'/etc/nftables.conf',replace('#!/usr/sbin/nft -f\n# gstack virtual router r-15e7555a560e77e-us-central1: firewall and NAT of demo-project/global/networks/default in us-central1.\n# Rendered from the gstack database; edits are overwritten. GCE firewall rules appear in the\n# order they take effect: priority, then deny before allow.\nflush ruleset\n\ntable ip gstack_filter {\n    set vm_addrs {\n        type ipv4_addr\n        elements = { 10.128.0.2 }\n    }\n\n    # Instances with neither an external address nor a Cloud NAT: they have no way out.\n    set no_egress {\n        type ipv4_addr\n        elements = { 10.128.0.2 }\n    }\n\n    # Traffic to instances. allow: accept, deny: drop.\n    chain ingress {\n        meta l4proto icmp counter accept comment "default-allow-icmp p65534"\n        ip saddr 10.128.0.0/9 meta l4proto tcp counter accept comment "default-allow-internal p65534"\n        ip saddr 10.128.0.0/9 meta l4proto udp counter accept comment "default-allow-internal p65534"\n        ip saddr 10.128.0.0/9 meta l4proto icmp counter accept comment "default-allow-internal p65534"\n        tcp dport 3389 counter accept comment "default-allow-rdp p65534"\n        tcp dport 22 counter accept comment "default-allow-ssh p65534"\n        counter drop comment "implied deny all ingress p65535"\n    }\n\n    # Traffic from instances. allow: go on (to the destination''s ingress rules), deny: drop.\n    chain egress {\n        counter return comment "implied allow all egress p65535"\n    }\n\n    chain forward {\n        type filter hook forward priority filter; policy drop;\n        ct state established,related accept\n        ct state invalid drop\n        oifname "eth0" ip saddr @no_egress counter drop comment "no external address and no Cloud NAT"\n        ip saddr @vm_addrs jump egress\n        ip daddr @vm_addrs jump ingress\n        ip saddr @vm_addrs accept\n    }\n\n    # The router itself: DHCP and DNS for the guests, the load balancer''s frontends.\n    chain input {\n        type filter hook input priority filter; policy drop;\n        iifname "lo" accept\n        ct state established,related accept\n        ct state invalid drop\n        meta l4proto icmp accept\n        iifname != "eth0" udp dport { 53, 67 } accept\n        iifname != "eth0" tcp dport 53 accept\n    }\n}\n\ntable ip gstack_nat {\n    chain prerouting {\n        type nat hook prerouting priority dstnat; policy accept;\n    }\n\n    chain postrouting {\n        type nat hook postrouting priority srcnat; policy accept;\n    }\n}\n','\n',char(10)),'d354787fa3cdd23b8dc7d318e21877191c39318dc893121878157c20c06d88bf',1,1796282431.3042564392);
INSERT INTO sim_vm_files VALUES(3,2932659893550195810,1,'/etc/haproxy/haproxy.cfg',replace('# gstack virtual router r-15e7555a560e77e-us-central1: load balancers of demo-project/global/networks/default in us-central1.\n# Rendered from the gstack database; edits are overwritten.\nglobal\n    log /dev/log local0\n    maxconn 65536\n    crt-base /etc/haproxy/certs\n\ndefaults\n    mode tcp\n    log global\n    option tcplog\n    timeout connect 5s\n    timeout client 1m\n    timeout server 1m\n\n# The router''s own view of its backends, for the core''s checks (and a listener when there is no rule).\nlisten stats\n    bind 127.0.0.1:8404\n    mode http\n    stats enable\n    stats uri /\n    stats refresh 10s\n','\n',char(10)),'06596825745dc00670ab3bb8ac90f8cd88e9b7d9f0f3156b3b0081873b10fa4d',1,1796282431.3042564392);
INSERT INTO sim_vm_files VALUES(4,2932659893550195810,1,'/etc/sysctl.d/90-gstack.conf',replace('# gstack virtual router r-15e7555a560e77e-us-central1 (x86_64 system VM template).\nnet.ipv4.ip_forward = 1\n# HAProxy binds the forwarding rules'' addresses, which the kernel routes here.\nnet.ipv4.ip_nonlocal_bind = 1\nnet.netfilter.nf_conntrack_max = 4194304\n','\n',char(10)),'af5c3abfa8103645c2c5f1e9a48b4b49e246c61ae7dff7c6df7232aabf76cb9a',1,1796282431.3042564392);
CREATE TABLE regions (
	id INTEGER NOT NULL, 
	uid BIGINT NOT NULL, 
	name VARCHAR(63) NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (uid), 
	UNIQUE (name)
);
INSERT INTO regions VALUES(1,1000,'us-central1','UP');
INSERT INTO regions VALUES(2,1100,'europe-west1','UP');
CREATE TABLE principals (
	id INTEGER NOT NULL, 
	kind VARCHAR(16) NOT NULL, 
	email VARCHAR(255) NOT NULL, 
	display_name VARCHAR(255) NOT NULL, 
	password_hash VARCHAR(255), 
	project_id INTEGER, 
	admin BOOLEAN NOT NULL, 
	disabled BOOLEAN NOT NULL, 
	created FLOAT NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (email), 
	FOREIGN KEY(project_id) REFERENCES projects (id)
);
INSERT INTO principals VALUES(1,'user','admin@gstack.local','gstack administrator','scrypt$32768$8$3$gf53dZCxNI8785RWK4YHuA==$Lh9TyvcyPjHYUJkdy62ksQ1RNmXuyJa1fTdnaYnymMg=',NULL,1,0,1796282426.5237121581);
INSERT INTO principals VALUES(2,'serviceAccount','gstack-admin@demo-project.iam.gserviceaccount.com','gstack administrator',NULL,19,0,0,1796282426.5354847908);
CREATE TABLE zones (
	id INTEGER NOT NULL, 
	uid BIGINT NOT NULL, 
	name VARCHAR(63) NOT NULL, 
	region_id INTEGER NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	systemvm_arch VARCHAR(16) NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (uid), 
	UNIQUE (name), 
	FOREIGN KEY(region_id) REFERENCES regions (id)
);
INSERT INTO zones VALUES(1,2000,'us-central1-a',1,'UP','x86_64');
INSERT INTO zones VALUES(2,2001,'us-central1-b',1,'UP','x86_64');
INSERT INTO zones VALUES(3,2002,'us-central1-c',1,'UP','x86_64');
INSERT INTO zones VALUES(4,2101,'europe-west1-b',2,'UP','x86_64');
CREATE TABLE service_account_keys (
	id INTEGER NOT NULL, 
	key_id VARCHAR(64) NOT NULL, 
	principal_id INTEGER NOT NULL, 
	public_pem TEXT NOT NULL, 
	disabled BOOLEAN NOT NULL, 
	created FLOAT NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (key_id), 
	FOREIGN KEY(principal_id) REFERENCES principals (id)
);
INSERT INTO service_account_keys VALUES(1,'24d10c08f9bedab8edf79774a2e1acbe020c62c8',2,replace('-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAuh4YPvVYSb0DgK3L55SC\nGhBp5vFYKN23Qn1KHbmJigWWjnfle/88DOcgI2VzOyFuy43lZKTY0AgXYp7NyiS1\n6jAaiirG3LYN5cGYe2KkwtaulJv7Ytv1o4xIcSw39LpmponXRdJMwYtoxitL7OiM\ns0AlCOR+KdicABxXDobLcDATbiBlpIMW7dvAGSzOQSyPkqr4iVqWeKCgjij4MshV\noG6jT/W+x2OTLYOLAewxfs62lvyAg5OF46l9+V6lCAV2TLObm1a75vA084Z+Fst2\nxNN81LcQoxt5Ta3Ky/rRQZfAr8bZNFJ0nI9QlScDnla67viG6Tst2XTj6RK2jjq+\nlwIDAQAB\n-----END PUBLIC KEY-----\n','\n',char(10)),0,1796282426.7006840705);
CREATE TABLE memberships (
	id INTEGER NOT NULL, 
	project_id INTEGER NOT NULL, 
	principal_id INTEGER NOT NULL, 
	role VARCHAR(32) NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_membership UNIQUE (project_id, principal_id), 
	FOREIGN KEY(project_id) REFERENCES projects (id), 
	FOREIGN KEY(principal_id) REFERENCES principals (id)
);
INSERT INTO memberships VALUES(1,19,1,'roles/owner');
INSERT INTO memberships VALUES(2,19,2,'roles/owner');
CREATE TABLE refresh_tokens (
	id INTEGER NOT NULL, 
	token_hash VARCHAR(64) NOT NULL, 
	principal_id INTEGER NOT NULL, 
	client_id VARCHAR(255) NOT NULL, 
	scopes TEXT NOT NULL, 
	grant VARCHAR(64), 
	revoked BOOLEAN NOT NULL, 
	created FLOAT NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (token_hash), 
	FOREIGN KEY(principal_id) REFERENCES principals (id)
);
CREATE TABLE authorization_codes (
	id INTEGER NOT NULL, 
	code_hash VARCHAR(64) NOT NULL, 
	client_id VARCHAR(255) NOT NULL, 
	principal_id INTEGER NOT NULL, 
	redirect_uri TEXT NOT NULL, 
	scopes TEXT NOT NULL, 
	code_challenge VARCHAR(128), 
	code_challenge_method VARCHAR(8), 
	nonce VARCHAR(255), 
	offline BOOLEAN NOT NULL, 
	used BOOLEAN NOT NULL, 
	expires FLOAT NOT NULL, 
	created FLOAT NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (code_hash), 
	FOREIGN KEY(principal_id) REFERENCES principals (id)
);
CREATE TABLE device_authorizations (
	id INTEGER NOT NULL, 
	device_code_hash VARCHAR(64) NOT NULL, 
	user_code_hash VARCHAR(64) NOT NULL, 
	client_id VARCHAR(255) NOT NULL, 
	scopes TEXT NOT NULL, 
	principal_id INTEGER, 
	status VARCHAR(16) NOT NULL, 
	interval INTEGER NOT NULL, 
	last_poll FLOAT NOT NULL, 
	expires FLOAT NOT NULL, 
	created FLOAT NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (device_code_hash), 
	UNIQUE (user_code_hash), 
	FOREIGN KEY(principal_id) REFERENCES principals (id)
);
CREATE TABLE browser_sessions (
	id INTEGER NOT NULL, 
	token_hash VARCHAR(64) NOT NULL, 
	principal_id INTEGER NOT NULL, 
	expires FLOAT NOT NULL, 
	created FLOAT NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (token_hash), 
	FOREIGN KEY(principal_id) REFERENCES principals (id)
);
CREATE TABLE system_vms (
	id INTEGER NOT NULL, 
	uid BIGINT NOT NULL, 
	name VARCHAR(63) NOT NULL, 
	kind VARCHAR(24) NOT NULL, 
	role_key VARCHAR(200) NOT NULL, 
	zone_id INTEGER NOT NULL, 
	region VARCHAR(63) NOT NULL, 
	network_uid BIGINT, 
	network_url VARCHAR(400), 
	project VARCHAR(100), 
	arch VARCHAR(16) NOT NULL, 
	state VARCHAR(16) NOT NULL, 
	public_ip VARCHAR(45), 
	conntrack_max INTEGER, 
	config_version INTEGER NOT NULL, 
	config_checksums TEXT NOT NULL, 
	pushed_version INTEGER NOT NULL, 
	pushed_checksums TEXT NOT NULL, 
	pushed_at FLOAT, 
	last_error VARCHAR(400), 
	created FLOAT NOT NULL, 
	updated FLOAT NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (uid), 
	UNIQUE (name), 
	UNIQUE (role_key), 
	FOREIGN KEY(zone_id) REFERENCES zones (id)
);
INSERT INTO system_vms VALUES(1,2932659893550195810,'r-15e7555a560e77e-us-central1','router','router:98645252555990910:us-central1',1,'us-central1',98645252555990910,'https://www.googleapis.com/compute/v1/projects/demo-project/global/networks/default','demo-project','x86_64','Running',NULL,4194304,1,'{"/etc/dnsmasq.d/gstack.conf":"d794fb97eed1b0ab9c996fbc0f6927a0e800289546d732167e4736fe5f0e551f","/etc/haproxy/haproxy.cfg":"06596825745dc00670ab3bb8ac90f8cd88e9b7d9f0f3156b3b0081873b10fa4d","/etc/nftables.conf":"d354787fa3cdd23b8dc7d318e21877191c39318dc893121878157c20c06d88bf","/etc/sysctl.d/90-gstack.conf":"af5c3abfa8103645c2c5f1e9a48b4b49e246c61ae7dff7c6df7232aabf76cb9a"}',1,'{"/etc/dnsmasq.d/gstack.conf":"d794fb97eed1b0ab9c996fbc0f6927a0e800289546d732167e4736fe5f0e551f","/etc/haproxy/haproxy.cfg":"06596825745dc00670ab3bb8ac90f8cd88e9b7d9f0f3156b3b0081873b10fa4d","/etc/nftables.conf":"d354787fa3cdd23b8dc7d318e21877191c39318dc893121878157c20c06d88bf","/etc/sysctl.d/90-gstack.conf":"af5c3abfa8103645c2c5f1e9a48b4b49e246c61ae7dff7c6df7232aabf76cb9a"}',1796282431.3316605091,NULL,1796282431.1900229453,1796282431.2318041324);
CREATE TABLE secondary_objects (
	id INTEGER NOT NULL, 
	zone_id INTEGER NOT NULL, 
	kind VARCHAR(16) NOT NULL, 
	owner_uid BIGINT NOT NULL, 
	source VARCHAR(400) NOT NULL, 
	size_bytes BIGINT NOT NULL, 
	checksum VARCHAR(64) NOT NULL, 
	copied_by VARCHAR(63) NOT NULL, 
	created FLOAT NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_secondary_object UNIQUE (zone_id, owner_uid), 
	FOREIGN KEY(zone_id) REFERENCES zones (id)
);
CREATE TABLE pods (
	id INTEGER NOT NULL, 
	zone_id INTEGER NOT NULL, 
	name VARCHAR(63) NOT NULL, 
	cidr VARCHAR(43) NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(zone_id) REFERENCES zones (id)
);
INSERT INTO pods VALUES(1,1,'us-central1-a-pod1','192.168.208.0/24');
INSERT INTO pods VALUES(2,2,'us-central1-b-pod1','192.168.209.0/24');
INSERT INTO pods VALUES(3,3,'us-central1-c-pod1','192.168.210.0/24');
INSERT INTO pods VALUES(4,4,'europe-west1-b-pod1','192.168.53.0/24');
CREATE TABLE access_tokens (
	id INTEGER NOT NULL, 
	token_hash VARCHAR(64) NOT NULL, 
	principal_id INTEGER NOT NULL, 
	client_id VARCHAR(255) NOT NULL, 
	scopes TEXT NOT NULL, 
	expires FLOAT NOT NULL, 
	revoked BOOLEAN NOT NULL, 
	created FLOAT NOT NULL, 
	refresh_token_id INTEGER, 
	grant VARCHAR(64), 
	PRIMARY KEY (id), 
	UNIQUE (token_hash), 
	FOREIGN KEY(principal_id) REFERENCES principals (id), 
	FOREIGN KEY(refresh_token_id) REFERENCES refresh_tokens (id)
);
INSERT INTO access_tokens VALUES(1,'183c695d00f3b25b14682d71003458df29c7257f5e3db4c65b90345705edda8a',2,'','https://www.googleapis.com/auth/cloud-platform',1796286030.4306237697,0,1796282430.4306237697,NULL,NULL);
CREATE TABLE clusters (
	id INTEGER NOT NULL, 
	pod_id INTEGER NOT NULL, 
	zone_id INTEGER NOT NULL, 
	name VARCHAR(63) NOT NULL, 
	hypervisor VARCHAR(32) NOT NULL, 
	cpu_overprovisioning FLOAT NOT NULL, 
	memory_overprovisioning FLOAT NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(pod_id) REFERENCES pods (id), 
	FOREIGN KEY(zone_id) REFERENCES zones (id)
);
INSERT INTO clusters VALUES(1,1,1,'us-central1-a-sim1','simulator',4.0,1.0);
INSERT INTO clusters VALUES(2,2,2,'us-central1-b-sim1','simulator',4.0,1.0);
INSERT INTO clusters VALUES(3,3,3,'us-central1-c-sim1','simulator',4.0,1.0);
INSERT INTO clusters VALUES(4,4,4,'europe-west1-b-sim1','simulator',4.0,1.0);
CREATE TABLE hosts (
	id INTEGER NOT NULL, 
	cluster_id INTEGER NOT NULL, 
	zone_id INTEGER NOT NULL, 
	name VARCHAR(255) NOT NULL, 
	uri VARCHAR(255) NOT NULL, 
	cpus INTEGER NOT NULL, 
	memory_mb INTEGER NOT NULL, 
	cpu_platform VARCHAR(64) NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	fail_next_spawns INTEGER NOT NULL, 
	options TEXT, 
	monitor_owner VARCHAR(64), 
	monitor_expiry FLOAT, 
	failures INTEGER, 
	last_seen FLOAT, 
	last_error VARCHAR(255), 
	PRIMARY KEY (id), 
	FOREIGN KEY(cluster_id) REFERENCES clusters (id), 
	FOREIGN KEY(zone_id) REFERENCES zones (id), 
	UNIQUE (name)
);
INSERT INTO hosts VALUES(1,1,1,'sim-us-central1-a-01','simulator://us-central1-a/1',32,131072,'Intel Cascade Lake','Up',0,NULL,NULL,NULL,NULL,NULL,NULL);
INSERT INTO hosts VALUES(2,1,1,'sim-us-central1-a-02','simulator://us-central1-a/2',32,131072,'Intel Cascade Lake','Up',0,NULL,NULL,NULL,NULL,NULL,NULL);
INSERT INTO hosts VALUES(3,1,1,'sim-us-central1-a-03','simulator://us-central1-a/3',32,131072,'AMD Milan','Up',0,NULL,NULL,NULL,NULL,NULL,NULL);
INSERT INTO hosts VALUES(4,1,1,'sim-us-central1-a-04','simulator://us-central1-a/4',32,131072,'AMD Milan','Up',0,NULL,NULL,NULL,NULL,NULL,NULL);
INSERT INTO hosts VALUES(5,2,2,'sim-us-central1-b-01','simulator://us-central1-b/1',32,131072,'Intel Cascade Lake','Up',0,NULL,NULL,NULL,NULL,NULL,NULL);
INSERT INTO hosts VALUES(6,2,2,'sim-us-central1-b-02','simulator://us-central1-b/2',32,131072,'AMD Milan','Up',0,NULL,NULL,NULL,NULL,NULL,NULL);
INSERT INTO hosts VALUES(7,2,2,'sim-us-central1-b-03','simulator://us-central1-b/3',32,131072,'AMD Milan','Up',0,NULL,NULL,NULL,NULL,NULL,NULL);
INSERT INTO hosts VALUES(8,2,2,'sim-us-central1-b-04','simulator://us-central1-b/4',32,131072,'Intel Cascade Lake','Up',0,NULL,NULL,NULL,NULL,NULL,NULL);
INSERT INTO hosts VALUES(9,3,3,'sim-us-central1-c-01','simulator://us-central1-c/1',32,131072,'AMD Milan','Up',0,NULL,NULL,NULL,NULL,NULL,NULL);
INSERT INTO hosts VALUES(10,3,3,'sim-us-central1-c-02','simulator://us-central1-c/2',32,131072,'AMD Milan','Up',0,NULL,NULL,NULL,NULL,NULL,NULL);
INSERT INTO hosts VALUES(11,3,3,'sim-us-central1-c-03','simulator://us-central1-c/3',32,131072,'Intel Cascade Lake','Up',0,NULL,NULL,NULL,NULL,NULL,NULL);
INSERT INTO hosts VALUES(12,3,3,'sim-us-central1-c-04','simulator://us-central1-c/4',32,131072,'Intel Cascade Lake','Up',0,NULL,NULL,NULL,NULL,NULL,NULL);
INSERT INTO hosts VALUES(13,4,4,'sim-europe-west1-b-01','simulator://europe-west1-b/1',32,131072,'Intel Cascade Lake','Up',0,NULL,NULL,NULL,NULL,NULL,NULL);
INSERT INTO hosts VALUES(14,4,4,'sim-europe-west1-b-02','simulator://europe-west1-b/2',32,131072,'Intel Cascade Lake','Up',0,NULL,NULL,NULL,NULL,NULL,NULL);
INSERT INTO hosts VALUES(15,4,4,'sim-europe-west1-b-03','simulator://europe-west1-b/3',32,131072,'AMD Milan','Up',0,NULL,NULL,NULL,NULL,NULL,NULL);
INSERT INTO hosts VALUES(16,4,4,'sim-europe-west1-b-04','simulator://europe-west1-b/4',32,131072,'AMD Milan','Up',0,NULL,NULL,NULL,NULL,NULL,NULL);
CREATE TABLE storage_pools (
	id INTEGER NOT NULL, 
	zone_id INTEGER NOT NULL, 
	cluster_id INTEGER, 
	name VARCHAR(255) NOT NULL, 
	capacity_gb BIGINT NOT NULL, 
	overprovisioning FLOAT NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(zone_id) REFERENCES zones (id), 
	FOREIGN KEY(cluster_id) REFERENCES clusters (id), 
	UNIQUE (name)
);
INSERT INTO storage_pools VALUES(1,1,NULL,'us-central1-a-primary',20480,2.0,'Up');
INSERT INTO storage_pools VALUES(2,2,NULL,'us-central1-b-primary',20480,2.0,'Up');
INSERT INTO storage_pools VALUES(3,3,NULL,'us-central1-c-primary',20480,2.0,'Up');
INSERT INTO storage_pools VALUES(4,4,NULL,'europe-west1-b-primary',20480,2.0,'Up');
CREATE TABLE resources (
	pk INTEGER NOT NULL, 
	uid BIGINT NOT NULL, 
	project VARCHAR(100) NOT NULL, 
	collection VARCHAR(40) NOT NULL, 
	scope VARCHAR(80) NOT NULL, 
	region VARCHAR(63), 
	name VARCHAR(63) NOT NULL, 
	status VARCHAR(24) NOT NULL, 
	subtype VARCHAR(64) NOT NULL, 
	created FLOAT NOT NULL, 
	body TEXT NOT NULL, 
	host_id INTEGER, 
	pool_id INTEGER, 
	last_host_id INTEGER, 
	vcpus INTEGER NOT NULL, 
	memory_mb INTEGER NOT NULL, 
	size_gb BIGINT NOT NULL, 
	PRIMARY KEY (pk), 
	CONSTRAINT uq_resource_name UNIQUE (project, collection, scope, name), 
	UNIQUE (uid), 
	FOREIGN KEY(host_id) REFERENCES hosts (id), 
	FOREIGN KEY(pool_id) REFERENCES storage_pools (id), 
	FOREIGN KEY(last_host_id) REFERENCES hosts (id)
);
INSERT INTO resources VALUES(1,4844064087088492182,'debian-cloud','images','global',NULL,'debian-11-bullseye-v20240709','READY','',1720483200.0,'{"kind":"compute#image","id":"4844064087088492182","creationTimestamp":"2024-07-08T17:00:00.000-07:00","name":"debian-11-bullseye-v20240709","description":"Debian, Debian GNU/Linux, 11 (bullseye), amd64 built on 20240709","sourceType":"RAW","rawDisk":{"source":"","containerType":"TAR"},"archiveSizeBytes":"2147483648","diskSizeGb":"10","licenses":["https://www.googleapis.com/compute/v1/projects/debian-cloud/global/licenses/debian-11"],"family":"debian-11","labels":{},"labelFingerprint":"yv7OvQoSJPA=","storageLocations":["eu","us","asia"],"architecture":"X86_64","guestOsFeatures":[{"type":"UEFI_COMPATIBLE"},{"type":"VIRTIO_SCSI_MULTIQUEUE"},{"type":"GVNIC"}],"selfLink":"https://www.googleapis.com/compute/v1/projects/debian-cloud/global/images/debian-11-bullseye-v20240709","status":"READY"}',NULL,NULL,NULL,0,0,10);
INSERT INTO resources VALUES(2,1989348878263719389,'debian-cloud','images','global',NULL,'debian-11-bullseye-v20241009','READY','',1728432000.0,'{"kind":"compute#image","id":"1989348878263719389","creationTimestamp":"2024-10-08T17:00:00.000-07:00","name":"debian-11-bullseye-v20241009","description":"Debian, Debian GNU/Linux, 11 (bullseye), amd64 built on 20241009","sourceType":"RAW","rawDisk":{"source":"","containerType":"TAR"},"archiveSizeBytes":"2147483648","diskSizeGb":"10","licenses":["https://www.googleapis.com/compute/v1/projects/debian-cloud/global/licenses/debian-11"],"family":"debian-11","labels":{},"labelFingerprint":"yv7OvQoSJPA=","storageLocations":["eu","us","asia"],"architecture":"X86_64","guestOsFeatures":[{"type":"UEFI_COMPATIBLE"},{"type":"VIRTIO_SCSI_MULTIQUEUE"},{"type":"GVNIC"}],"selfLink":"https://www.googleapis.com/compute/v1/projects/debian-cloud/global/images/debian-11-bullseye-v20241009","status":"READY"}',NULL,NULL,NULL,0,0,10);
INSERT INTO resources VALUES(3,9073855511903309150,'debian-cloud','images','global',NULL,'debian-12-bookworm-v20240709','READY','',1720483200.0,'{"kind":"compute#image","id":"9073855511903309150","creationTimestamp":"2024-07-08T17:00:00.000-07:00","name":"debian-12-bookworm-v20240709","description":"Debian, Debian GNU/Linux, 12 (bookworm), amd64 built on 20240709","sourceType":"RAW","rawDisk":{"source":"","containerType":"TAR"},"archiveSizeBytes":"2147483648","diskSizeGb":"10","licenses":["https://www.googleapis.com/compute/v1/projects/debian-cloud/global/licenses/debian-12"],"family":"debian-12","labels":{},"labelFingerprint":"yv7OvQoSJPA=","storageLocations":["eu","us","asia"],"architecture":"X86_64","guestOsFeatures":[{"type":"UEFI_COMPATIBLE"},{"type":"VIRTIO_SCSI_MULTIQUEUE"},{"type":"GVNIC"}],"selfLink":"https://www.googleapis.com/compute/v1/projects/debian-cloud/global/images/debian-12-bookworm-v20240709","status":"READY"}',NULL,NULL,NULL,0,0,10);
INSERT INTO resources VALUES(4,7250121786503389023,'debian-cloud','images','global',NULL,'debian-12-bookworm-v20241009','READY','',1728432000.0,'{"kind":"compute#image","id":"7250121786503389023","creationTimestamp":"2024-10-08T17:00:00.000-07:00","name":"debian-12-bookworm-v20241009","description":"Debian, Debian GNU/Linux, 12 (bookworm), amd64 built on 20241009","sourceType":"RAW","rawDisk":{"source":"","containerType":"TAR"},"archiveSizeBytes":"2147483648","diskSizeGb":"10","licenses":["https://www.googleapis.com/compute/v1/projects/debian-cloud/global/licenses/debian-12"],"family":"debian-12","labels":{},"labelFingerprint":"yv7OvQoSJPA=","storageLocations":["eu","us","asia"],"architecture":"X86_64","guestOsFeatures":[{"type":"UEFI_COMPATIBLE"},{"type":"VIRTIO_SCSI_MULTIQUEUE"},{"type":"GVNIC"}],"selfLink":"https://www.googleapis.com/compute/v1/projects/debian-cloud/global/images/debian-12-bookworm-v20241009","status":"READY"}',NULL,NULL,NULL,0,0,10);
INSERT INTO resources VALUES(5,6610874377084018171,'ubuntu-os-cloud','images','global',NULL,'ubuntu-2204-jammy-v20240927','READY','',1727395200.0,'{"kind":"compute#image","id":"6610874377084018171","creationTimestamp":"2024-09-26T17:00:00.000-07:00","name":"ubuntu-2204-jammy-v20240927","description":"Canonical, Ubuntu, 22.04 LTS, amd64 jammy image built on 2024-09-27","sourceType":"RAW","rawDisk":{"source":"","containerType":"TAR"},"archiveSizeBytes":"2147483648","diskSizeGb":"10","licenses":["https://www.googleapis.com/compute/v1/projects/ubuntu-os-cloud/global/licenses/ubuntu-2204-lts"],"family":"ubuntu-2204-lts","labels":{},"labelFingerprint":"yv7OvQoSJPA=","storageLocations":["eu","us","asia"],"architecture":"X86_64","guestOsFeatures":[{"type":"UEFI_COMPATIBLE"},{"type":"VIRTIO_SCSI_MULTIQUEUE"},{"type":"GVNIC"}],"selfLink":"https://www.googleapis.com/compute/v1/projects/ubuntu-os-cloud/global/images/ubuntu-2204-jammy-v20240927","status":"READY"}',NULL,NULL,NULL,0,0,10);
INSERT INTO resources VALUES(6,1820660715981653388,'ubuntu-os-cloud','images','global',NULL,'ubuntu-2404-noble-amd64-v20241004','READY','',1728000000.0,'{"kind":"compute#image","id":"1820660715981653388","creationTimestamp":"2024-10-03T17:00:00.000-07:00","name":"ubuntu-2404-noble-amd64-v20241004","description":"Canonical, Ubuntu, 24.04 LTS, amd64 noble image built on 2024-10-04","sourceType":"RAW","rawDisk":{"source":"","containerType":"TAR"},"archiveSizeBytes":"2147483648","diskSizeGb":"10","licenses":["https://www.googleapis.com/compute/v1/projects/ubuntu-os-cloud/global/licenses/ubuntu-2404-lts-amd64"],"family":"ubuntu-2404-lts-amd64","labels":{},"labelFingerprint":"yv7OvQoSJPA=","storageLocations":["eu","us","asia"],"architecture":"X86_64","guestOsFeatures":[{"type":"UEFI_COMPATIBLE"},{"type":"VIRTIO_SCSI_MULTIQUEUE"},{"type":"GVNIC"}],"selfLink":"https://www.googleapis.com/compute/v1/projects/ubuntu-os-cloud/global/images/ubuntu-2404-noble-amd64-v20241004","status":"READY"}',NULL,NULL,NULL,0,0,10);
INSERT INTO resources VALUES(7,98645252555990910,'demo-project','networks','global',NULL,'default','','',1796282422.6982204914,'{"kind":"compute#network","id":"98645252555990910","creationTimestamp":"2026-12-02T23:20:22.698-08:00","name":"default","autoCreateSubnetworks":true,"routingConfig":{"bgpBestPathSelectionMode":"LEGACY","routingMode":"REGIONAL"},"mtu":1460,"networkFirewallPolicyEnforcementOrder":"AFTER_CLASSIC_FIREWALL","description":"Default network for the project","selfLink":"https://www.googleapis.com/compute/v1/projects/demo-project/global/networks/default","selfLinkWithId":"https://www.googleapis.com/compute/v1/projects/demo-project/global/networks/98645252555990910","subnetworks":["https://www.googleapis.com/compute/v1/projects/demo-project/regions/europe-west1/subnetworks/default","https://www.googleapis.com/compute/v1/projects/demo-project/regions/us-central1/subnetworks/default"]}',NULL,NULL,NULL,0,0,0);
INSERT INTO resources VALUES(8,7802708594230463549,'demo-project','routes','global',NULL,'default-route-72a4c41e0c7b0a40','','default',1796282422.6984138489,'{"kind":"compute#route","id":"7802708594230463549","creationTimestamp":"2026-12-02T23:20:22.698-08:00","name":"default-route-72a4c41e0c7b0a40","description":"Default route to the Internet.","network":"https://www.googleapis.com/compute/v1/projects/demo-project/global/networks/default","destRange":"0.0.0.0/0","priority":1000,"nextHopGateway":"https://www.googleapis.com/compute/v1/projects/demo-project/global/gateways/default-internet-gateway","routeType":"STATIC","selfLink":"https://www.googleapis.com/compute/v1/projects/demo-project/global/routes/default-route-72a4c41e0c7b0a40"}',NULL,NULL,NULL,0,0,0);
INSERT INTO resources VALUES(9,2100543285913764941,'demo-project','subnetworks','regions/europe-west1','europe-west1','default','','',1796282422.6997554301,'{"kind":"compute#subnetwork","id":"2100543285913764941","creationTimestamp":"2026-12-02T23:20:22.699-08:00","name":"default","network":"https://www.googleapis.com/compute/v1/projects/demo-project/global/networks/default","ipCidrRange":"10.132.0.0/20","gatewayAddress":"10.132.0.1","region":"https://www.googleapis.com/compute/v1/projects/demo-project/regions/europe-west1","privateIpGoogleAccess":false,"stackType":"IPV4_ONLY","purpose":"PRIVATE","selfLink":"https://www.googleapis.com/compute/v1/projects/demo-project/regions/europe-west1/subnetworks/default","fingerprint":"9MklMNCgQPE="}',NULL,NULL,NULL,0,0,0);
INSERT INTO resources VALUES(10,1570342548242827070,'demo-project','routes','global',NULL,'default-route-4e6765100fbbbe00','','subnet',1796282422.7105669975,'{"kind":"compute#route","id":"1570342548242827070","creationTimestamp":"2026-12-02T23:20:22.710-08:00","name":"default-route-4e6765100fbbbe00","description":"Default local route to the subnetwork 10.132.0.0/20.","network":"https://www.googleapis.com/compute/v1/projects/demo-project/global/networks/default","destRange":"10.132.0.0/20","priority":0,"nextHopNetwork":"https://www.googleapis.com/compute/v1/projects/demo-project/global/networks/default","routeType":"SUBNET","selfLink":"https://www.googleapis.com/compute/v1/projects/demo-project/global/routes/default-route-4e6765100fbbbe00"}',NULL,NULL,NULL,0,0,0);
INSERT INTO resources VALUES(11,946619664477460008,'demo-project','subnetworks','regions/us-central1','us-central1','default','','',1796282422.711404562,'{"kind":"compute#subnetwork","id":"946619664477460008","creationTimestamp":"2026-12-02T23:20:22.711-08:00","name":"default","network":"https://www.googleapis.com/compute/v1/projects/demo-project/global/networks/default","ipCidrRange":"10.128.0.0/20","gatewayAddress":"10.128.0.1","region":"https://www.googleapis.com/compute/v1/projects/demo-project/regions/us-central1","privateIpGoogleAccess":false,"stackType":"IPV4_ONLY","purpose":"PRIVATE","selfLink":"https://www.googleapis.com/compute/v1/projects/demo-project/regions/us-central1/subnetworks/default","fingerprint":"aEczLwVVv-c="}',NULL,NULL,NULL,0,0,0);
INSERT INTO resources VALUES(12,2573898669504833702,'demo-project','routes','global',NULL,'default-route-b2681677ef386970','','subnet',1796282422.7116250991,'{"kind":"compute#route","id":"2573898669504833702","creationTimestamp":"2026-12-02T23:20:22.711-08:00","name":"default-route-b2681677ef386970","description":"Default local route to the subnetwork 10.128.0.0/20.","network":"https://www.googleapis.com/compute/v1/projects/demo-project/global/networks/default","destRange":"10.128.0.0/20","priority":0,"nextHopNetwork":"https://www.googleapis.com/compute/v1/projects/demo-project/global/networks/default","routeType":"SUBNET","selfLink":"https://www.googleapis.com/compute/v1/projects/demo-project/global/routes/default-route-b2681677ef386970"}',NULL,NULL,NULL,0,0,0);
INSERT INTO resources VALUES(13,5741191846101639089,'demo-project','firewalls','global',NULL,'default-allow-internal','','',1796282422.7117869854,'{"kind":"compute#firewall","id":"5741191846101639089","creationTimestamp":"2026-12-02T23:20:22.711-08:00","name":"default-allow-internal","description":"Allow internal traffic on the default network","network":"https://www.googleapis.com/compute/v1/projects/demo-project/global/networks/default","priority":65534,"sourceRanges":["10.128.0.0/9"],"allowed":[{"IPProtocol":"tcp","ports":["0-65535"]},{"IPProtocol":"udp","ports":["0-65535"]},{"IPProtocol":"icmp"}],"direction":"INGRESS","logConfig":{"enable":false},"disabled":false,"selfLink":"https://www.googleapis.com/compute/v1/projects/demo-project/global/firewalls/default-allow-internal"}',NULL,NULL,NULL,0,0,0);
INSERT INTO resources VALUES(14,6165921118062382532,'demo-project','firewalls','global',NULL,'default-allow-ssh','','',1796282422.711908102,'{"kind":"compute#firewall","id":"6165921118062382532","creationTimestamp":"2026-12-02T23:20:22.711-08:00","name":"default-allow-ssh","description":"Allow SSH from anywhere","network":"https://www.googleapis.com/compute/v1/projects/demo-project/global/networks/default","priority":65534,"sourceRanges":["0.0.0.0/0"],"allowed":[{"IPProtocol":"tcp","ports":["22"]}],"direction":"INGRESS","logConfig":{"enable":false},"disabled":false,"selfLink":"https://www.googleapis.com/compute/v1/projects/demo-project/global/firewalls/default-allow-ssh"}',NULL,NULL,NULL,0,0,0);
INSERT INTO resources VALUES(15,3327564047980291229,'demo-project','firewalls','global',NULL,'default-allow-rdp','','',1796282422.7120213508,'{"kind":"compute#firewall","id":"3327564047980291229","creationTimestamp":"2026-12-02T23:20:22.712-08:00","name":"default-allow-rdp","description":"Allow RDP from anywhere","network":"https://www.googleapis.com/compute/v1/projects/demo-project/global/networks/default","priority":65534,"sourceRanges":["0.0.0.0/0"],"allowed":[{"IPProtocol":"tcp","ports":["3389"]}],"direction":"INGRESS","logConfig":{"enable":false},"disabled":false,"selfLink":"https://www.googleapis.com/compute/v1/projects/demo-project/global/firewalls/default-allow-rdp"}',NULL,NULL,NULL,0,0,0);
INSERT INTO resources VALUES(16,7307627806440040180,'demo-project','firewalls','global',NULL,'default-allow-icmp','','',1796282422.7121257781,'{"kind":"compute#firewall","id":"7307627806440040180","creationTimestamp":"2026-12-02T23:20:22.712-08:00","name":"default-allow-icmp","description":"Allow ICMP from anywhere","network":"https://www.googleapis.com/compute/v1/projects/demo-project/global/networks/default","priority":65534,"sourceRanges":["0.0.0.0/0"],"allowed":[{"IPProtocol":"icmp"}],"direction":"INGRESS","logConfig":{"enable":false},"disabled":false,"selfLink":"https://www.googleapis.com/compute/v1/projects/demo-project/global/firewalls/default-allow-icmp"}',NULL,NULL,NULL,0,0,0);
INSERT INTO resources VALUES(17,8798469486605758183,'demo-project','disks','zones/us-central1-a','us-central1','data-1','READY','pd-standard',1796282430.9285564422,'{"kind":"compute#disk","id":"8798469486605758183","creationTimestamp":"2026-12-02T23:20:30.928-08:00","name":"data-1","description":"","sizeGb":"20","zone":"https://www.googleapis.com/compute/v1/projects/demo-project/zones/us-central1-a","type":"https://www.googleapis.com/compute/v1/projects/demo-project/zones/us-central1-a/diskTypes/pd-standard","labels":{"env":"prod"},"labelFingerprint":"DXs8DChy0nM=","physicalBlockSizeBytes":"4096","architecture":"X86_64","selfLink":"https://www.googleapis.com/compute/v1/projects/demo-project/zones/us-central1-a/disks/data-1","status":"READY"}',NULL,1,NULL,0,0,20);
INSERT INTO resources VALUES(18,290438752897610618,'demo-project','instances','zones/us-central1-a','us-central1','vm-1','RUNNING','e2-small',1796282431.1119670868,'{"kind":"compute#instance","id":"290438752897610618","creationTimestamp":"2026-12-02T23:20:31.111-08:00","name":"vm-1","description":"","tags":{"fingerprint":"0wXsbNIPBF0="},"machineType":"https://www.googleapis.com/compute/v1/projects/demo-project/zones/us-central1-a/machineTypes/e2-small","canIpForward":false,"networkInterfaces":[{"kind":"compute#networkInterface","name":"nic0","network":"https://www.googleapis.com/compute/v1/projects/demo-project/global/networks/default","subnetwork":"https://www.googleapis.com/compute/v1/projects/demo-project/regions/us-central1/subnetworks/default","networkIP":"10.128.0.2","stackType":"IPV4_ONLY","fingerprint":"_IWjdwgQS8Q="}],"disks":[{"kind":"compute#attachedDisk","type":"PERSISTENT","mode":"READ_WRITE","source":"https://www.googleapis.com/compute/v1/projects/demo-project/zones/us-central1-a/disks/vm-1","deviceName":"vm-1","index":0,"boot":true,"autoDelete":true,"interface":"SCSI","diskSizeGb":"10","architecture":"X86_64","licenses":["https://www.googleapis.com/compute/v1/projects/debian-cloud/global/licenses/debian-12"]}],"metadata":{"kind":"compute#metadata","fingerprint":"-ZYZb8t7Wi0="},"serviceAccounts":[],"selfLink":"https://www.googleapis.com/compute/v1/projects/demo-project/zones/us-central1-a/instances/vm-1","scheduling":{"onHostMaintenance":"MIGRATE","automaticRestart":true,"preemptible":false,"provisioningModel":"STANDARD"},"cpuPlatform":"Intel Cascade Lake","labels":{"env":"prod","team":"a"},"labelFingerprint":"XYk57GI0taY=","startRestricted":false,"deletionProtection":false,"zone":"https://www.googleapis.com/compute/v1/projects/demo-project/zones/us-central1-a","hostname":"vm-1.us-central1-a.c.demo-project.internal","shieldedInstanceConfig":{"enableSecureBoot":false,"enableVtpm":true,"enableIntegrityMonitoring":true},"keyRevocationActionType":"NONE","status":"RUNNING","fingerprint":"myhSYiJzTqA=","lastStartTimestamp":"2026-12-02T23:20:31.152-08:00"}',1,NULL,1,2,2048,0);
INSERT INTO resources VALUES(19,3511086417388865122,'demo-project','disks','zones/us-central1-a','us-central1','vm-1','READY','pd-standard',1796282431.1123871803,'{"kind":"compute#disk","id":"3511086417388865122","creationTimestamp":"2026-12-02T23:20:31.112-08:00","name":"vm-1","description":"","sourceImage":"https://www.googleapis.com/compute/v1/projects/debian-cloud/global/images/debian-12-bookworm-v20241009","sourceImageId":"7250121786503389023","licenses":["https://www.googleapis.com/compute/v1/projects/debian-cloud/global/licenses/debian-12"],"guestOsFeatures":[{"type":"UEFI_COMPATIBLE"},{"type":"VIRTIO_SCSI_MULTIQUEUE"},{"type":"GVNIC"}],"architecture":"X86_64","sizeGb":"10","zone":"https://www.googleapis.com/compute/v1/projects/demo-project/zones/us-central1-a","type":"https://www.googleapis.com/compute/v1/projects/demo-project/zones/us-central1-a/diskTypes/pd-standard","labels":{},"labelFingerprint":"yv7OvQoSJPA=","physicalBlockSizeBytes":"4096","users":["https://www.googleapis.com/compute/v1/projects/demo-project/zones/us-central1-a/instances/vm-1"],"lastAttachTimestamp":"2026-12-02T23:20:31.112-08:00","selfLink":"https://www.googleapis.com/compute/v1/projects/demo-project/zones/us-central1-a/disks/vm-1","status":"READY"}',NULL,1,NULL,0,0,10);
INSERT INTO resources VALUES(20,2932659893550195810,'gstack-system','systemvms','zones/us-central1-a','us-central1','r-15e7555a560e77e-us-central1','Running','systemvm-x86_64',1796282431.1900331973,'{"kind":"gstack#router","id":"2932659893550195810","creationTimestamp":"2026-12-02T23:20:31.190-08:00","name":"r-15e7555a560e77e-us-central1","role":"router","network":"https://www.googleapis.com/compute/v1/projects/demo-project/global/networks/default","template":"https://www.googleapis.com/compute/v1/projects/gstack-system/global/images/systemvm-x86_64","selfLink":"https://www.googleapis.com/compute/v1/projects/gstack-system/zones/us-central1-a/systemvms/r-15e7555a560e77e-us-central1","status":"Running"}',1,NULL,1,1,512,0);
INSERT INTO resources VALUES(21,7205224740474673546,'demo-project','instances','zones/us-central1-a','us-central1','vm-2','TERMINATED','e2-micro',1796282431.3125545978,'{"kind":"compute#instance","id":"7205224740474673546","creationTimestamp":"2026-12-02T23:20:31.312-08:00","name":"vm-2","description":"","tags":{"fingerprint":"0wXsbNIPBF0="},"machineType":"https://www.googleapis.com/compute/v1/projects/demo-project/zones/us-central1-a/machineTypes/e2-micro","canIpForward":false,"networkInterfaces":[{"kind":"compute#networkInterface","name":"nic0","network":"https://www.googleapis.com/compute/v1/projects/demo-project/global/networks/default","subnetwork":"https://www.googleapis.com/compute/v1/projects/demo-project/regions/us-central1/subnetworks/default","networkIP":"10.128.0.3","stackType":"IPV4_ONLY","fingerprint":"BIiQ2FbsdC4="}],"disks":[{"kind":"compute#attachedDisk","type":"PERSISTENT","mode":"READ_WRITE","source":"https://www.googleapis.com/compute/v1/projects/demo-project/zones/us-central1-a/disks/vm-2","deviceName":"vm-2","index":0,"boot":true,"autoDelete":true,"interface":"SCSI","diskSizeGb":"10","architecture":"X86_64","licenses":["https://www.googleapis.com/compute/v1/projects/debian-cloud/global/licenses/debian-12"]}],"metadata":{"kind":"compute#metadata","fingerprint":"-ZYZb8t7Wi0="},"serviceAccounts":[],"selfLink":"https://www.googleapis.com/compute/v1/projects/demo-project/zones/us-central1-a/instances/vm-2","scheduling":{"onHostMaintenance":"MIGRATE","automaticRestart":true,"preemptible":false,"provisioningModel":"STANDARD"},"cpuPlatform":"Intel Cascade Lake","labels":{},"labelFingerprint":"yv7OvQoSJPA=","startRestricted":false,"deletionProtection":false,"zone":"https://www.googleapis.com/compute/v1/projects/demo-project/zones/us-central1-a","hostname":"vm-2.us-central1-a.c.demo-project.internal","shieldedInstanceConfig":{"enableSecureBoot":false,"enableVtpm":true,"enableIntegrityMonitoring":true},"keyRevocationActionType":"NONE","status":"TERMINATED","fingerprint":"IqVFsixYNEE=","lastStartTimestamp":"2026-12-02T23:20:31.347-08:00","lastStopTimestamp":"2026-12-02T23:20:31.469-08:00"}',NULL,NULL,1,2,1024,0);
INSERT INTO resources VALUES(22,3440416699116885800,'demo-project','disks','zones/us-central1-a','us-central1','vm-2','READY','pd-standard',1796282431.3128783703,'{"kind":"compute#disk","id":"3440416699116885800","creationTimestamp":"2026-12-02T23:20:31.312-08:00","name":"vm-2","description":"","sourceImage":"https://www.googleapis.com/compute/v1/projects/debian-cloud/global/images/debian-12-bookworm-v20241009","sourceImageId":"7250121786503389023","licenses":["https://www.googleapis.com/compute/v1/projects/debian-cloud/global/licenses/debian-12"],"guestOsFeatures":[{"type":"UEFI_COMPATIBLE"},{"type":"VIRTIO_SCSI_MULTIQUEUE"},{"type":"GVNIC"}],"architecture":"X86_64","sizeGb":"10","zone":"https://www.googleapis.com/compute/v1/projects/demo-project/zones/us-central1-a","type":"https://www.googleapis.com/compute/v1/projects/demo-project/zones/us-central1-a/diskTypes/pd-standard","labels":{},"labelFingerprint":"yv7OvQoSJPA=","physicalBlockSizeBytes":"4096","users":["https://www.googleapis.com/compute/v1/projects/demo-project/zones/us-central1-a/instances/vm-2"],"lastAttachTimestamp":"2026-12-02T23:20:31.312-08:00","selfLink":"https://www.googleapis.com/compute/v1/projects/demo-project/zones/us-central1-a/disks/vm-2","status":"READY"}',NULL,1,NULL,0,0,10);
INSERT INTO resources VALUES(23,3146973647636521532,'demo-project','addresses','global',NULL,'addr-1','RESERVED','EXTERNAL',1796282431.4756455421,'{"kind":"compute#address","id":"3146973647636521532","creationTimestamp":"2026-12-02T23:20:31.475-08:00","name":"addr-1","address":"198.19.255.2","addressType":"EXTERNAL","networkTier":"PREMIUM","ipVersion":"IPV4","labels":{},"labelFingerprint":"yv7OvQoSJPA=","selfLink":"https://www.googleapis.com/compute/v1/projects/demo-project/global/addresses/addr-1","status":"RESERVED"}',NULL,NULL,NULL,0,0,0);
CREATE TABLE sim_domains (
	id INTEGER NOT NULL, 
	instance_uid BIGINT NOT NULL, 
	host_id INTEGER NOT NULL, 
	name VARCHAR(255) NOT NULL, 
	state VARCHAR(16) NOT NULL, 
	console TEXT NOT NULL, 
	console_dropped BIGINT NOT NULL, 
	boots INTEGER NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (instance_uid), 
	FOREIGN KEY(host_id) REFERENCES hosts (id)
);
INSERT INTO sim_domains VALUES(1,290438752897610618,1,'vm-1','running',replace(replace('SeaBIOS (version 1.16.3-debian-1.16.3-2)\r\nBooting from Hard Disk 0... (boot 1)\r\n[    0.000000] Linux version 6.1.0-28-cloud-amd64 (debian-kernel@lists.debian.org)\r\n[    0.000000] Command line: BOOT_IMAGE=/boot/vmlinuz root=/dev/sda1 console=ttyS0,38400n8\r\n[    0.012000] smpboot: Allowing 2 CPUs, 0 hotplug CPUs\r\n[    0.013000] Memory: 2097152K available\r\n[    1.200000] sd 0:0:0:0: [sda] 20971520 512-byte logical blocks\r\n[    2.100000] virtio_net virtio1 nic0: MAC 42:01:0a:80:00:02\r\n[    3.500000] systemd[1]: Started google-guest-agent.service - Google Compute Engine Guest Agent.\r\n[    4.000000] google_metadata_script_runner: Starting startup scripts on vm-1.\r\nDebian GNU/Linux 12 vm-1 ttyS0\r\n\r\nvm-1 login: \r\n','\r',char(13)),'\n',char(10)),0,1);
INSERT INTO sim_domains VALUES(2,2932659893550195810,1,'r-15e7555a560e77e-us-central1','running',replace(replace('SeaBIOS (version 1.16.3-debian-1.16.3-2)\r\nBooting from Hard Disk 0... (boot 1)\r\n[    0.000000] Linux version 6.1.0-28-cloud-amd64 (debian-kernel@lists.debian.org)\r\n[    0.000000] Command line: BOOT_IMAGE=/boot/vmlinuz root=/dev/sda1 console=ttyS0,38400n8\r\n[    0.012000] smpboot: Allowing 1 CPUs, 0 hotplug CPUs\r\n[    0.013000] Memory: 524288K available\r\n[    1.200000] sd 0:0:0:0: [sda] 4194304 512-byte logical blocks\r\n[    2.100000] virtio_net virtio1 eth0: MAC 42:02:a2:18:24:62\r\n[    2.100000] virtio_net virtio1 eth1: MAC 42:01:0a:80:00:01\r\n[    3.500000] systemd[1]: Started google-guest-agent.service - Google Compute Engine Guest Agent.\r\n[    4.000000] google_metadata_script_runner: Starting startup scripts on r-15e7555a560e77e-us-central1.\r\nDebian GNU/Linux 12 r-15e7555a560e77e-us-central1 ttyS0\r\n\r\nr-15e7555a560e77e-us-central1 login: \r\n[  OK  ] Reloaded configuration /etc/dnsmasq.d/gstack.conf.\r\n[  OK  ] Reloaded configuration /etc/haproxy/haproxy.cfg.\r\n[  OK  ] Reloaded configuration /etc/nftables.conf.\r\n[  OK  ] Reloaded configuration /etc/sysctl.d/90-gstack.conf.\r\n','\r',char(13)),'\n',char(10)),0,1);
INSERT INTO sim_domains VALUES(3,7205224740474673546,1,'vm-2','shutoff',replace(replace('SeaBIOS (version 1.16.3-debian-1.16.3-2)\r\nBooting from Hard Disk 0... (boot 1)\r\n[    0.000000] Linux version 6.1.0-28-cloud-amd64 (debian-kernel@lists.debian.org)\r\n[    0.000000] Command line: BOOT_IMAGE=/boot/vmlinuz root=/dev/sda1 console=ttyS0,38400n8\r\n[    0.012000] smpboot: Allowing 2 CPUs, 0 hotplug CPUs\r\n[    0.013000] Memory: 1048576K available\r\n[    1.200000] sd 0:0:0:0: [sda] 20971520 512-byte logical blocks\r\n[    2.100000] virtio_net virtio1 nic0: MAC 42:01:0a:80:00:03\r\n[    3.500000] systemd[1]: Started google-guest-agent.service - Google Compute Engine Guest Agent.\r\n[    4.000000] google_metadata_script_runner: Starting startup scripts on vm-2.\r\nDebian GNU/Linux 12 vm-2 ttyS0\r\n\r\nvm-2 login: \r\n[  OK  ] Reached target poweroff.target - System Power Off.\r\n[   99.000000] reboot: Power down\r\n','\r',char(13)),'\n',char(10)),0,1);
CREATE INDEX ix_used_assertions_expires ON used_assertions (expires);
CREATE INDEX ix_instance_group_members_instance_uid ON instance_group_members (instance_uid);
CREATE INDEX ix_instance_group_members_group_uid ON instance_group_members (group_uid);
CREATE INDEX ix_operation_claim ON operations (status, lease_expiry);
CREATE INDEX ix_operation_target ON operations (target_id, status);
CREATE INDEX ix_operation_scope ON operations (project, scope, name);
CREATE INDEX ix_ip_allocations_owner_uid ON ip_allocations (owner_uid);
CREATE INDEX ix_console_ticket_uses_expires ON console_ticket_uses (expires);
CREATE INDEX ix_sim_vm_files_vm_uid ON sim_vm_files (vm_uid);
CREATE INDEX ix_service_account_keys_principal_id ON service_account_keys (principal_id);
CREATE INDEX ix_memberships_principal_id ON memberships (principal_id);
CREATE INDEX ix_memberships_project_id ON memberships (project_id);
CREATE INDEX ix_refresh_tokens_principal_id ON refresh_tokens (principal_id);
CREATE INDEX ix_refresh_tokens_grant ON refresh_tokens (grant);
CREATE INDEX ix_authorization_codes_expires ON authorization_codes (expires);
CREATE INDEX ix_authorization_codes_principal_id ON authorization_codes (principal_id);
CREATE INDEX ix_device_authorizations_expires ON device_authorizations (expires);
CREATE INDEX ix_browser_sessions_expires ON browser_sessions (expires);
CREATE INDEX ix_browser_sessions_principal_id ON browser_sessions (principal_id);
CREATE INDEX ix_system_vm_network ON system_vms (network_uid);
CREATE INDEX ix_system_vms_zone_id ON system_vms (zone_id);
CREATE INDEX ix_secondary_objects_owner_uid ON secondary_objects (owner_uid);
CREATE INDEX ix_secondary_objects_zone_id ON secondary_objects (zone_id);
CREATE INDEX ix_access_tokens_grant ON access_tokens (grant);
CREATE INDEX ix_access_tokens_refresh_token_id ON access_tokens (refresh_token_id);
CREATE INDEX ix_access_tokens_principal_id ON access_tokens (principal_id);
CREATE INDEX ix_clusters_zone_id ON clusters (zone_id);
CREATE INDEX ix_hosts_zone_id ON hosts (zone_id);
CREATE INDEX ix_hosts_cluster_id ON hosts (cluster_id);
CREATE INDEX ix_storage_pools_zone_id ON storage_pools (zone_id);
CREATE INDEX ix_resource_host_usage ON resources (host_id, vcpus, memory_mb);
CREATE INDEX ix_resource_pool_usage ON resources (pool_id, size_gb);
CREATE INDEX ix_sim_domains_host_id ON sim_domains (host_id);
CREATE TRIGGER resource_usage_insert AFTER INSERT ON resources BEGIN INSERT INTO resource_usage (project, region, collection, subtype, count, cpus, size_gb) SELECT NEW.project, COALESCE(NEW.region, ''), NEW.collection, NEW.subtype, 1, (CASE WHEN NEW.status <> 'TERMINATED' THEN NEW.vcpus ELSE 0 END), NEW.size_gb WHERE NEW.collection IN ('instances', 'disks') ON CONFLICT (project, region, collection, subtype) DO UPDATE SET count = resource_usage.count + excluded.count, cpus = resource_usage.cpus + excluded.cpus, size_gb = resource_usage.size_gb + excluded.size_gb; END;
CREATE TRIGGER resource_usage_delete AFTER DELETE ON resources BEGIN INSERT INTO resource_usage (project, region, collection, subtype, count, cpus, size_gb) SELECT OLD.project, COALESCE(OLD.region, ''), OLD.collection, OLD.subtype, -1, -(CASE WHEN OLD.status <> 'TERMINATED' THEN OLD.vcpus ELSE 0 END), -OLD.size_gb WHERE OLD.collection IN ('instances', 'disks') ON CONFLICT (project, region, collection, subtype) DO UPDATE SET count = resource_usage.count + excluded.count, cpus = resource_usage.cpus + excluded.cpus, size_gb = resource_usage.size_gb + excluded.size_gb; END;
CREATE TRIGGER resource_usage_update AFTER UPDATE ON resources WHEN OLD.project IS NOT NEW.project OR OLD.region IS NOT NEW.region OR OLD.collection IS NOT NEW.collection OR OLD.subtype IS NOT NEW.subtype OR OLD.vcpus IS NOT NEW.vcpus OR OLD.size_gb IS NOT NEW.size_gb OR (OLD.status = 'TERMINATED') IS NOT (NEW.status = 'TERMINATED') BEGIN INSERT INTO resource_usage (project, region, collection, subtype, count, cpus, size_gb) SELECT OLD.project, COALESCE(OLD.region, ''), OLD.collection, OLD.subtype, -1, -(CASE WHEN OLD.status <> 'TERMINATED' THEN OLD.vcpus ELSE 0 END), -OLD.size_gb WHERE OLD.collection IN ('instances', 'disks') ON CONFLICT (project, region, collection, subtype) DO UPDATE SET count = resource_usage.count + excluded.count, cpus = resource_usage.cpus + excluded.cpus, size_gb = resource_usage.size_gb + excluded.size_gb; INSERT INTO resource_usage (project, region, collection, subtype, count, cpus, size_gb) SELECT NEW.project, COALESCE(NEW.region, ''), NEW.collection, NEW.subtype, 1, (CASE WHEN NEW.status <> 'TERMINATED' THEN NEW.vcpus ELSE 0 END), NEW.size_gb WHERE NEW.collection IN ('instances', 'disks') ON CONFLICT (project, region, collection, subtype) DO UPDATE SET count = resource_usage.count + excluded.count, cpus = resource_usage.cpus + excluded.cpus, size_gb = resource_usage.size_gb + excluded.size_gb; END;
COMMIT;
