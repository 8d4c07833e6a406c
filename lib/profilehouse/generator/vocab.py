"""Vocabularies the generator draws from: names, places, products, personas.

Names come with their pinyin (for e-mail addresses) and, where one exists, their traditional
form (for the 繁/简 variants real systems hold). Typos swap a character for a homophone, as
pinyin input methods do.
"""

from __future__ import annotations

# surname: (pinyin, traditional form, weight ~ frequency)
SURNAMES: list[tuple[str, str, str, float]] = [
    ("王", "wang", "王", 7.1),
    ("李", "li", "李", 7.0),
    ("张", "zhang", "張", 6.7),
    ("刘", "liu", "劉", 5.4),
    ("陈", "chen", "陳", 4.5),
    ("杨", "yang", "楊", 3.1),
    ("黄", "huang", "黃", 2.2),
    ("赵", "zhao", "趙", 2.0),
    ("吴", "wu", "吳", 1.9),
    ("周", "zhou", "周", 1.9),
    ("徐", "xu", "徐", 1.3),
    ("孙", "sun", "孫", 1.2),
    ("马", "ma", "馬", 1.2),
    ("朱", "zhu", "朱", 1.1),
    ("胡", "hu", "胡", 1.0),
    ("郭", "guo", "郭", 1.0),
    ("何", "he", "何", 0.9),
    ("林", "lin", "林", 0.9),
    ("高", "gao", "高", 0.9),
    ("罗", "luo", "羅", 0.8),
    ("郑", "zheng", "鄭", 0.8),
    ("梁", "liang", "梁", 0.7),
    ("谢", "xie", "謝", 0.6),
    ("宋", "song", "宋", 0.6),
    ("唐", "tang", "唐", 0.6),
    ("许", "xu", "許", 0.5),
    ("韩", "han", "韓", 0.5),
    ("冯", "feng", "馮", 0.5),
    ("邓", "deng", "鄧", 0.5),
    ("曹", "cao", "曹", 0.5),
    ("彭", "peng", "彭", 0.4),
    ("曾", "zeng", "曾", 0.4),
    ("肖", "xiao", "蕭", 0.4),
    ("田", "tian", "田", 0.4),
    ("董", "dong", "董", 0.4),
    ("袁", "yuan", "袁", 0.4),
    ("潘", "pan", "潘", 0.3),
    ("于", "yu", "於", 0.3),
    ("蒋", "jiang", "蔣", 0.3),
    ("蔡", "cai", "蔡", 0.3),
    ("余", "yu", "餘", 0.3),
    ("杜", "du", "杜", 0.3),
    ("叶", "ye", "葉", 0.3),
    ("程", "cheng", "程", 0.3),
    ("苏", "su", "蘇", 0.3),
    ("魏", "wei", "魏", 0.3),
    ("吕", "lv", "呂", 0.3),
    ("丁", "ding", "丁", 0.3),
    ("任", "ren", "任", 0.3),
    ("沈", "shen", "沈", 0.3),
    ("欧阳", "ouyang", "歐陽", 0.05),
    ("司马", "sima", "司馬", 0.02),
]

# given-name character: (pinyin, traditional form, homophone typo)
GIVEN_CHARS_MALE: list[tuple[str, str, str, str]] = [
    ("伟", "wei", "偉", "玮"),
    ("强", "qiang", "強", "墙"),
    ("磊", "lei", "磊", "蕾"),
    ("军", "jun", "軍", "君"),
    ("洋", "yang", "洋", "阳"),
    ("勇", "yong", "勇", "永"),
    ("杰", "jie", "傑", "洁"),
    ("涛", "tao", "濤", "韬"),
    ("明", "ming", "明", "铭"),
    ("超", "chao", "超", "朝"),
    ("刚", "gang", "剛", "钢"),
    ("平", "ping", "平", "萍"),
    ("辉", "hui", "輝", "晖"),
    ("鹏", "peng", "鵬", "朋"),
    ("华", "hua", "華", "桦"),
    ("飞", "fei", "飛", "菲"),
    ("斌", "bin", "斌", "彬"),
    ("宇", "yu", "宇", "雨"),
    ("浩", "hao", "浩", "皓"),
    ("凯", "kai", "凱", "恺"),
    ("建", "jian", "建", "健"),
    ("国", "guo", "國", "果"),
    ("东", "dong", "東", "冬"),
    ("文", "wen", "文", "雯"),
    ("俊", "jun", "俊", "骏"),
    ("志", "zhi", "志", "智"),
    ("峰", "feng", "峰", "锋"),
    ("龙", "long", "龍", "隆"),
    ("博", "bo", "博", "波"),
    ("晨", "chen", "晨", "辰"),
    ("子", "zi", "子", "梓"),
    ("轩", "xuan", "軒", "宣"),
    ("天", "tian", "天", "添"),
    ("成", "cheng", "成", "诚"),
    ("新", "xin", "新", "鑫"),
]
GIVEN_CHARS_FEMALE: list[tuple[str, str, str, str]] = [
    ("芳", "fang", "芳", "方"),
    ("娜", "na", "娜", "纳"),
    ("敏", "min", "敏", "民"),
    ("静", "jing", "靜", "晶"),
    ("丽", "li", "麗", "莉"),
    ("艳", "yan", "艷", "燕"),
    ("娟", "juan", "娟", "鹃"),
    ("霞", "xia", "霞", "夏"),
    ("秀", "xiu", "秀", "绣"),
    ("玲", "ling", "玲", "铃"),
    ("婷", "ting", "婷", "亭"),
    ("雪", "xue", "雪", "薛"),
    ("琳", "lin", "琳", "林"),
    ("颖", "ying", "穎", "莹"),
    ("倩", "qian", "倩", "茜"),
    ("慧", "hui", "慧", "惠"),
    ("佳", "jia", "佳", "嘉"),
    ("欣", "xin", "欣", "馨"),
    ("悦", "yue", "悅", "月"),
    ("怡", "yi", "怡", "仪"),
    ("梦", "meng", "夢", "蒙"),
    ("雨", "yu", "雨", "语"),
    ("思", "si", "思", "丝"),
    ("晓", "xiao", "曉", "笑"),
    ("诗", "shi", "詩", "师"),
    ("琪", "qi", "琪", "琦"),
    ("露", "lu", "露", "璐"),
    ("红", "hong", "紅", "虹"),
    ("梅", "mei", "梅", "玫"),
    ("兰", "lan", "蘭", "岚"),
    ("春", "chun", "春", "纯"),
    ("燕", "yan", "燕", "艳"),
    ("玉", "yu", "玉", "钰"),
    ("萱", "xuan", "萱", "暄"),
    ("文", "wen", "文", "雯"),
]

# city: (province, city, 6-digit region code prefix used in resident IDs, postcode, districts)
CITIES: list[tuple[str, str, str, str, tuple[str, ...], float]] = [
    ("北京市", "北京", "110105", "100020", ("朝阳区", "海淀区", "东城区", "丰台区"), 1.4),
    ("上海市", "上海", "310115", "200120", ("浦东新区", "徐汇区", "静安区", "闵行区"), 1.4),
    ("广东省", "广州", "440106", "510620", ("天河区", "越秀区", "海珠区", "白云区"), 1.1),
    ("广东省", "深圳", "440305", "518052", ("南山区", "福田区", "宝安区", "龙岗区"), 1.1),
    ("浙江省", "杭州", "330106", "310012", ("西湖区", "拱墅区", "滨江区", "余杭区"), 0.9),
    ("江苏省", "南京", "320102", "210018", ("玄武区", "鼓楼区", "建邺区", "江宁区"), 0.8),
    ("江苏省", "苏州", "320508", "215008", ("姑苏区", "吴中区", "相城区", "工业园区"), 0.8),
    ("四川省", "成都", "510107", "610041", ("武侯区", "锦江区", "青羊区", "高新区"), 0.9),
    ("湖北省", "武汉", "420106", "430071", ("武昌区", "江汉区", "洪山区", "汉阳区"), 0.8),
    ("陕西省", "西安", "610113", "710061", ("雁塔区", "碑林区", "未央区", "莲湖区"), 0.7),
    ("重庆市", "重庆", "500103", "400010", ("渝中区", "江北区", "南岸区", "渝北区"), 0.8),
    ("天津市", "天津", "120101", "300040", ("和平区", "河西区", "南开区", "河东区"), 0.6),
    ("山东省", "青岛", "370202", "266001", ("市南区", "市北区", "崂山区", "黄岛区"), 0.6),
    ("湖南省", "长沙", "430104", "410013", ("岳麓区", "芙蓉区", "天心区", "开福区"), 0.6),
    ("福建省", "厦门", "350203", "361001", ("思明区", "湖里区", "集美区", "海沧区"), 0.4),
    ("河南省", "郑州", "410105", "450008", ("金水区", "二七区", "中原区", "管城区"), 0.6),
]

STREETS = [
    "人民路",
    "解放路",
    "中山路",
    "建设路",
    "和平路",
    "新华路",
    "胜利路",
    "长江路",
    "黄河路",
    "文化路",
    "学府路",
    "科技路",
    "滨江路",
    "花园路",
    "光明路",
    "友谊路",
]

MOBILE_PREFIXES = [
    "130",
    "131",
    "132",
    "133",
    "135",
    "136",
    "137",
    "138",
    "139",
    "150",
    "151",
    "152",
    "155",
    "157",
    "158",
    "159",
    "166",
    "176",
    "177",
    "180",
    "181",
    "182",
    "185",
    "186",
    "187",
    "188",
    "189",
    "191",
    "198",
    "199",
]

EMAIL_DOMAINS = [
    "qq.com",
    "163.com",
    "126.com",
    "sina.com",
    "gmail.com",
    "outlook.com",
    "foxmail.com",
    "139.com",
]

OCCUPATIONS = [
    "ENGINEER",
    "TEACHER",
    "CIVIL_SERVANT",
    "MANAGER",
    "SELF_EMPLOYED",
    "DOCTOR",
    "SALES",
    "STUDENT",
    "RETIRED",
    "FREELANCER",
    "WORKER",
    "FINANCE",
]

# category: (sku prefix, typical unit price in CNY)
CATEGORIES: list[tuple[str, str, float]] = [
    ("FRESH", "FR", 25.0),
    ("DAIRY", "DA", 18.0),
    ("SNACKS", "SN", 12.0),
    ("BEVERAGE", "BV", 8.0),
    ("PERSONAL_CARE", "PC", 45.0),
    ("HOUSEHOLD", "HH", 35.0),
    ("BABY", "BB", 120.0),
    ("ELECTRONICS", "EL", 680.0),
    ("APPAREL", "AP", 220.0),
    ("LIQUOR_GIFT", "LG", 380.0),
    ("BEAUTY", "BT", 260.0),
    ("HEALTH", "HL", 150.0),
]
SKUS_PER_CATEGORY = 40

# Merchant category codes for card purchases.
MCCS = [
    "5411",
    "5812",
    "5814",
    "5541",
    "5311",
    "5732",
    "5651",
    "5977",
    "4121",
    "4511",
    "7011",
    "5912",
    "8062",
    "5999",
]

BANK_PRODUCTS = {
    "CURRENT": ["CUR-STD", "CUR-PAYROLL"],
    "TIME_DEPOSIT": ["TD-3M", "TD-1Y", "TD-3Y"],
    "WEALTH": ["WM-CASH", "WM-BOND", "WM-EQUITY", "WM-FOF"],
    "CREDIT_CARD": ["CC-CLASSIC", "CC-GOLD", "CC-PLATINUM"],
    "LOAN": ["LN-MORTGAGE", "LN-CONSUMER", "LN-AUTO", "LN-BUSINESS"],
}

# Chinese festival shopping peaks (month, day): Spring Festival eve (approx.), 618, Double 11,
# Mid-Autumn (approx.), Double 12.
FESTIVALS = {
    2023: ["2023-01-21", "2023-06-18", "2023-09-29", "2023-11-11", "2023-12-12"],
    2024: ["2024-02-09", "2024-06-18", "2024-09-17", "2024-11-11", "2024-12-12"],
    2025: ["2025-01-28", "2025-06-18", "2025-10-06", "2025-11-11", "2025-12-12"],
    2026: ["2026-02-16", "2026-06-18", "2026-09-25", "2026-11-11", "2026-12-12"],
}

PERSONAS = [
    "DIGITAL_ACTIVE",  # 数字活跃型: app-heavy, many small mobile payments, young
    "HIGH_ASSET_CONSERVATIVE",  # 高资产保守型: large deposits, time deposits, few transactions
    "EMERGING_WEALTH",  # 新兴理财用户: growing balances, wealth products, loan prone
    "HIGH_FREQ_SMALL",  # 高频小额用户: many small POS purchases
    "HOLIDAY_SHOPPER",  # 节庆型消费人群: spending concentrated around festivals
    "PROMO_SENSITIVE",  # 促销敏感型: coupons, cart abandonment, responds to campaigns
    "DORMANT",  # 沉睡客户: little activity anywhere
]
